#!/bin/sh
# Answers, leaves a child behind in its process group and exits, after
# recording "its-pid child-pid" in $PIDFILE. The query says what the child
# (a sleep) does: "keep" the stdout it inherits, send it to /dev/null
# ("null"), or send stdin, stdout and stderr there ("detached"); with
# "ignore" it ignores SIGTERM.
case $QUERY_STRING in
    *ignore*) trap '' TERM ;;
esac
case $QUERY_STRING in
    *detached*) sleep 1000 </dev/null >/dev/null 2>&1 & ;;
    *null*) sleep 1000 >/dev/null & ;;
    *) sleep 1000 & ;;
esac
echo "$$ $!" > "$PIDFILE"
printf 'Content-Type: text/plain\n\nleft a child behind\n'
