#!/bin/sh
printf 'Content-Type: text/plain\n\n'
echo "hello from $SCRIPT_NAME"
