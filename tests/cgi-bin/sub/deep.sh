#!/bin/sh
printf 'Content-Type: text/plain\n\n'
echo "deep: SCRIPT_NAME=$SCRIPT_NAME PATH_INFO=$PATH_INFO cwd=$(pwd)"
