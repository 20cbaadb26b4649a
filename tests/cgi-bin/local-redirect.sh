#!/bin/sh
printf 'Location: /cgi-bin/target.sh?from=local\n\n'
