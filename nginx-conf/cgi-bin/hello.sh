#!/bin/sh
# An example CGI program: http://127.0.0.1:8080/cgi-bin/hello.sh/some/path?x=1
printf 'Content-Type: text/plain\n\n'
echo "Hello from a CGI program run by nginx."
echo
echo "SCRIPT_NAME=$SCRIPT_NAME"
echo "PATH_INFO=$PATH_INFO"
echo "QUERY_STRING=$QUERY_STRING"
echo "REQUEST_METHOD=$REQUEST_METHOD"
if [ -n "$CONTENT_LENGTH" ]; then
    echo "body ($CONTENT_LENGTH bytes):"
    cat
fi
