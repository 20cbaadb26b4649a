# Worker lifecycle: reload, graceful quit, timeouts.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::Gateway;

run_tests();

__DATA__

=== TEST 1: nginx -s reload while a request is in flight: it completes, new workers serve
--- config
location /slow {
    rust_wsgi $TEST_NGINX_APPS/slow.py;
}
location / {
    rust_wsgi $TEST_NGINX_APPS/hello.py;
}
--- perl
use Time::HiRes qw(sleep time);
my @old = worker_pids();
is(http_get('/')->{status}, 200, 'served before the reload');
my $slow = http_start("GET /slow?s=1.5 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
ok(wait_for(sub { error_log_text() =~ /slow: sleeping/ }, 30), 'the slow request is inside the app');
nginx_reload();
my $deadline = time + 5;
my @new;
while (time < $deadline) {
    @new = grep { my $p = $_; !grep { $_ == $p } @old } worker_pids();
    last if @new;
    sleep 0.05;
}
ok(@new, 'new workers started');
is(http_get('/')->{body}, 'Hello, world!', 'served during the reload');
my $r = http_finish($slow);
is($r->{status}, 200, 'the in-flight request completed');
is($r->{body}, 'slept 1.5', 'with its answer');
$deadline = time + 5;
sleep 0.05 while time < $deadline && grep { kill 0, $_ } @old;
ok(!(grep { kill 0, $_ } @old), 'the old workers exited');
is(http_get('/')->{body}, 'Hello, world!', 'served after the reload');
--- error_log
gracefully shutting down


=== TEST 2: nginx -s quit waits for a running request, then exits cleanly
--- config
location /slow {
    rust_wsgi $TEST_NGINX_APPS/slow.py;
}
--- perl
use Time::HiRes qw(sleep time);
my $slow = http_start("GET /slow?s=1 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
ok(wait_for(sub { error_log_text() =~ /slow: sleeping/ }, 30), 'the slow request is inside the app');
kill 'QUIT', nginx_pid();
my $r = http_finish($slow);
is($r->{body}, 'slept 1.0', 'the running request completed');
ok(nginx_wait_exit(30), 'nginx exited after it');
--- error_log
exit


=== TEST 3: an app silent for longer than rust_wsgi_read_timeout gets 504
--- config
location / {
    rust_wsgi $TEST_NGINX_APPS/slow.py;
    rust_wsgi_read_timeout 300ms;
}
--- request
GET /?s=1
--- error_code: 504
--- wait: 1
--- error_log
rust_wsgi: the app sent nothing for 300 ms; answering 504 (raise rust_wsgi_read_timeout if it is meant to be slow)


=== TEST 4: the read timeout restarts with every chunk of a slow stream
--- config
location / {
    rust_wsgi $TEST_NGINX_APPS/stream.py;
    rust_wsgi_read_timeout 1500ms;
}
--- request
GET /?n=5&delay=0.5
--- error_code: 200
--- response_body
chunk 0
chunk 1
chunk 2
chunk 3
chunk 4


=== TEST 5: nginx -s quit is not held up by an app stuck in a call whose client left
--- config
location / {
    rust_wsgi $TEST_NGINX_APPS/slow.py;
}
--- perl
use Time::HiRes qw(sleep);
my $s = http_start("GET /?s=30 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
ok(wait_for(sub { error_log_text() =~ /slow: sleeping/ }, 30), 'the slow request is inside the app');
close $s;
ok(wait_for(sub { error_log_text() =~ /client prematurely closed connection/ }, 30), 'nginx saw the client leave');
kill 'QUIT', nginx_pid();
# The thread sleeps 30 s: an exit long before that is not held up by it.
ok(nginx_wait_exit(20), 'nginx exited though the thread still sleeps');
--- error_log
client prematurely closed connection


=== TEST 6: nginx -s stop ends a worker whose app is in the middle of a request
--- config
location / {
    rust_wsgi $TEST_NGINX_APPS/slow.py;
}
--- perl
use Time::HiRes qw(sleep);
my $s = http_start("GET /?s=30 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
ok(wait_for(sub { error_log_text() =~ /slow: sleeping/ }, 30), 'the slow request is inside the app');
kill 'TERM', nginx_pid();
ok(nginx_wait_exit(20), 'nginx exited, long before the app would have answered');
close $s;
