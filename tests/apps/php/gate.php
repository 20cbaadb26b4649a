<?php
// Holds the request until the file ?f= names exists (the test creates it:
// no guessing how long to wait; 30 s at most), then says which process
// served it.
$f = $_GET['f'] ?? ''; $n = 0;
while (!file_exists($f) && $n++ < 600) { usleep(50000); }
echo "released ", getmypid(), "\n";
