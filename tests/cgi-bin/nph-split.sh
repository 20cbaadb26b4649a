#!/bin/sh
# An nph- program whose head comes in two writes: nginx reads the status
# line before the headers exist.
printf 'HTTP/1.1 298 Split Status\r\n'
sleep 1
printf 'Content-Type: text/plain\r\nX-Nph: split\r\n\r\nsplit body\n'
