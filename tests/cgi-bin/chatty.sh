#!/bin/sh
# Writes a two-byte line at a time, as fast as it can, forever.
printf 'Content-Type: text/plain\n\n'
while :; do echo x; done
