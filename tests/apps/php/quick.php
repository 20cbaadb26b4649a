<?php echo "quick ", getmypid(), "\n";
