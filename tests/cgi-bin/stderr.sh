#!/bin/sh
echo "stderr: first line" >&2
printf 'stderr: second line\n' >&2
printf 'Content-Type: text/plain\n\n'
echo "some output"
printf 'stderr: after the output, no newline' >&2
