#!/bin/sh
printf 'Content-Type: text/plain\n\n'
echo "target: $REQUEST_METHOD $QUERY_STRING"
