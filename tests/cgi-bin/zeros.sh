#!/bin/sh
# Streams QUERY_STRING MiB (default 1) of zero bytes.
printf 'Content-Type: application/octet-stream\n\n'
exec head -c $(( ${QUERY_STRING:-1} * 1048576 )) /dev/zero
