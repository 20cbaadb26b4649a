#!/bin/sh
# Reports its signal state, parent and process group.
printf 'Content-Type: text/plain\n\n'
grep -E '^(SigBlk|SigIgn|PPid)' /proc/$$/status
echo "pgid $(ps -o pgid= -p $$ | tr -d ' ') pid $$"
