#!/bin/sh
# A header that never ends.
printf 'X-Huge: '
head -c 100000 /dev/zero | tr '\0' 'x'
