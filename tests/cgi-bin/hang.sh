#!/bin/sh
# Records its pid and a grandchild's, then sends nothing and never ends.
sleep 300 &
echo "$$ $!" > "$PIDFILE"
sleep 300
