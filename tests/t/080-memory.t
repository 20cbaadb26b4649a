# Streaming and memory: backpressure keeps a worker's memory bounded.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::Gateway;

run_tests();

__DATA__

=== TEST 1: 1 GiB streamed in 64 KiB pieces to a slower client: all delivered, worker peak RSS grows < 64 MiB
--- config
location / {
    rust_wsgi $TEST_NGINX_APPS/firehose.py;
}
--- timeout: 120
--- perl
use Time::HiRes qw(sleep time);
http_get('/?chunks=4');    # warm: Python and the app are loaded
my ($worker) = worker_pids();
my $before = vm_hwm($worker);
my $s = http_start("GET /?chunks=16384 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
my ($total, $buf, $t0) = (0, '', time);
while (1) {
    my $n = sysread($s, $buf, 1 << 20);
    last unless $n;
    $total += $n;
    sleep 0.005;    # about 200 MB/s: slower than the app produces
}
close $s;
my $after = vm_hwm($worker);
my $growth = ($after - $before) / 1024;
cmp_ok($total, '>', 1 << 30, sprintf('1 GiB delivered in %.1f s', time - $t0));
cmp_ok($growth, '<', 64, sprintf('peak RSS grew %.1f MiB (%.1f -> %.1f MiB)', $growth, $before / 1024, $after / 1024));
--- wait: 0.5
--- error_log
firehose: produced 1073741824 bytes


=== TEST 2: one-byte chunks to a client that stops reading: memory stays bounded (chunks cost, not just bytes)
--- config
location /drip {
    rust_wsgi $TEST_NGINX_APPS/drip.py;
}
location / {
    rust_wsgi $TEST_NGINX_APPS/hello.py;
}
--- perl
use Time::HiRes qw(sleep);
http_get('/');    # warm: Python is loaded
my ($worker) = worker_pids();
my $before = vm_hwm($worker);
my $s = http_start("GET /drip HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
sysread($s, my $buf, 1024);
like($buf, qr{^HTTP/1.1 200}, 'streaming');
sleep 3;
my $growth = (vm_hwm($worker) - $before) / 1024;
cmp_ok($growth, '<', 32, sprintf('peak RSS grew %.1f MiB', $growth));
close $s;
