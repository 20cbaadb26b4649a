#!/bin/sh
# Answers, closes its stdout and keeps working; records its pid in $PIDFILE
# first.
echo "$$" > "$PIDFILE"
printf 'Content-Type: text/plain\n\nall of it\n'
exec >&-
sleep 1000
