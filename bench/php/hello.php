<?php
// The PHP page both PHP peers serve (php-cgi in a rust_pool, php-fpm):
// 13 bytes, as bench/apps/bench.py's /hello.
header('Content-Type: text/plain');
echo 'Hello, world!';
