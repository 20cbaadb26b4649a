# The nginx event loop never waits for Python.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::Gateway;
use IO::Select;

run_tests();

__DATA__

=== TEST 1: while an app sleeps, a static location and another WSGI request answer at once
--- http_config
rust_wsgi_threads 2;
--- config
location /held {
    rust_wsgi $TEST_NGINX_APPS/upstream.py;
}
location /hello {
    rust_wsgi $TEST_NGINX_APPS/hello.py;
}
location = /static {
    return 200 "static\n";
}
--- perl
is(http_get('/hello')->{status}, 200, 'warm: the app is loaded');
# The held request stays inside the app until the flag file exists: the
# others must be answered while it is there, however long they take.
my $flag = servroot() . '/release';
chmod 0777, servroot();
my $held = http_start("GET /held?wait=$flag HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
my $sel = IO::Select->new($held);
ok($sel->can_read(30) && sysread($held, my $first, 65536), 'the held request is inside the app');

my $static = http_get('/static');
my $wsgi = http_get('/hello');
is($static->{body}, "static\n", 'static answered while the app holds a request');
is($wsgi->{body}, 'Hello, world!', 'a second WSGI request too');

open my $fh, '>', $flag or die $!;
close $fh;
my $r = http_finish($held);
like($first . $r->{raw}, qr/first\n.*second\n/s, 'the held request completes once released');
--- workers: 1


=== TEST 2: more concurrent requests than threads queue up and all complete
--- http_config
rust_wsgi_threads 2;
--- config
location /slow {
    rust_wsgi $TEST_NGINX_APPS/slow.py;
}
--- perl
use Time::HiRes qw(time);
my $t0 = time;
my @socks = map { http_start("GET /slow?s=0.5 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n") } 1 .. 6;
my @bodies = map { http_finish($_)->{body} } @socks;
my $elapsed = time - $t0;
is_deeply(\@bodies, [('slept 0.5') x 6], 'all six answered');
cmp_ok($elapsed, '>=', 1.4, sprintf('two threads took three rounds (%.2f s)', $elapsed));


=== TEST 3: rust_wsgi_spin: an idle worker burns no CPU, even at the longest spin
--- http_config
rust_wsgi_spin 10ms;
--- config
location / {
    rust_wsgi $TEST_NGINX_APPS/hello.py;
}
--- perl
use Time::HiRes qw(sleep);
sub cpu_ticks {
    my ($pid) = @_;
    my $stat = Test::Gateway::slurp("/proc/$pid/stat") // return 0;
    $stat =~ s/^.*\) //s;
    my @f = split ' ', $stat;
    return $f[11] + $f[12];    # utime + stime of every thread
}
is(http_get('/')->{body}, "Hello, world!", 'served') for 1 .. 50;
my ($worker) = worker_pids();
sleep 0.2;
my $before = cpu_ticks($worker);
sleep 2;
my $used = cpu_ticks($worker) - $before;
cmp_ok($used, '<=', 5, "the idle worker used $used clock ticks in 2 s");
--- workers: 1


=== TEST 4: rust_wsgi_spin 0 parks threads at once and still serves every request
--- http_config
rust_wsgi_spin 0;
--- config
location / {
    rust_wsgi $TEST_NGINX_APPS/hello.py;
}
--- perl
my @pending = map { http_start("GET / HTTP/1.0\r\n\r\n") } 1 .. 20;
is(http_finish($_)->{body}, "Hello, world!", 'served') for @pending;


=== TEST 5: after a burst, the idle threads stop waking within seconds (the standby parks)
--- config
location / {
    rust_wsgi $TEST_NGINX_APPS/hello.py;
}
location /held {
    rust_wsgi $TEST_NGINX_APPS/upstream.py;
}
--- perl
use Time::HiRes qw(sleep);
sub wakeups {
    my ($pid) = @_;
    my $total = 0;
    for my $status (glob "/proc/$pid/task/*/status") {
        my $text = Test::Gateway::slurp($status) // next;
        $total += $1 while $text =~ /^(?:non)?voluntary_ctxt_switches:\s+(\d+)/mg;
    }
    return $total;
}
# A held request keeps a thread working, so the standby watches (wakes
# every millisecond) until it is done and a second after. A busy machine
# wakes it less often, never not at all.
my ($worker) = worker_pids();
my $flag = servroot() . '/release';
chmod 0777, servroot();
my $held = http_start("GET /held?wait=$flag HTTP/1.0\r\n\r\n");
is(http_get('/')->{body}, "Hello, world!", 'served') for 1 .. 20;
my $start = wakeups($worker);
sleep 1;
my $watching = wakeups($worker) - $start;
open my $fh, '>', $flag or die $!;
close $fh;
like(http_finish($held)->{raw}, qr/second/, 'the held request completes');
cmp_ok($watching, '>=', 20, "the standby watched the held request ($watching wake-ups in a second)");
sleep 2.5;
my $before = wakeups($worker);
sleep 2;
my $woke = wakeups($worker) - $before;
cmp_ok($woke, '<=', 10, "the idle worker's threads woke $woke times in 2 s");
--- workers: 1
