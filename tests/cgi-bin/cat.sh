#!/bin/sh
# Echoes the request body back.
printf 'Content-Type: application/octet-stream\n\n'
exec cat
