<?php
// 64 KiB, as bench/apps/bench.py's /64k.
header('Content-Type: application/octet-stream');
echo str_repeat('x', 65536);
