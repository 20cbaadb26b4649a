# The nginx event loop never waits for Python.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::Gateway;

run_tests();

__DATA__

=== TEST 1: while an app sleeps, a static location and another WSGI request answer at once
--- http_config
rust_wsgi_threads 2;
--- config
location /slow {
    rust_wsgi $TEST_NGINX_APPS/slow.py;
}
location /hello {
    rust_wsgi $TEST_NGINX_APPS/hello.py;
}
location = /static {
    return 200 "static\n";
}
--- perl
use Time::HiRes qw(time sleep);
is(http_get('/hello')->{status}, 200, 'warm: the app is loaded');
my $slow = http_start("GET /slow?s=2 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
sleep 0.2;    # the slow request is inside the app now

my $t0 = time;
my $static = http_get('/static');
my $static_time = time - $t0;
$t0 = time;
my $wsgi = http_get('/hello');
my $wsgi_time = time - $t0;

is($static->{body}, "static\n", 'static answer');
cmp_ok($static_time, '<', 0.3, sprintf('static answered in %.3f s', $static_time));
is($wsgi->{body}, 'Hello, world!', 'second WSGI answer');
cmp_ok($wsgi_time, '<', 0.3, sprintf('second WSGI request answered in %.3f s', $wsgi_time));

my $r = http_finish($slow);
is($r->{body}, 'slept 2.0', 'the slow request completes');
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
