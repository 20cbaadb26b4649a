#!/bin/sh
# Streams a line every 0.1 s forever; records its pid.
echo "$$" > "$PIDFILE"
printf 'Content-Type: text/plain\n\n'
i=0
while :; do
    echo "line $i"
    i=$((i + 1))
    sleep 0.1
done
