#!/bin/sh
printf 'HTTP/1.1 299 Raw Status\r\nContent-Type: text/plain\r\nX-Nph: yes\r\n\r\nnon-parsed body\n'
