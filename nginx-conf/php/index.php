<?php
// Served by php-cgi from the "php" program pool (see nginx.conf).
header('Content-Type: text/plain');
echo "Hello from PHP ", PHP_VERSION, " in process ", getmypid(), "\n";
echo "SCRIPT_NAME=", $_SERVER['SCRIPT_NAME'], " PATH_INFO=", $_SERVER['PATH_INFO'] ?? '', "\n";
