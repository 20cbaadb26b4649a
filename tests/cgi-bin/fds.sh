#!/bin/sh
# Reports its signal state, parent and process group. The status file is
# read with builtins only: while the shell forks a command (dash vforks),
# it blocks every signal for a moment, and grep could see that instead.
printf 'Content-Type: text/plain\n\n'
while read -r line; do
    case $line in
        SigBlk:*|SigIgn:*|PPid:*) echo "$line" ;;
    esac
done < /proc/$$/status
echo "pgid $(ps -o pgid= -p $$ | tr -d ' ') pid $$"
