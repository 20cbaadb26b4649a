# rust_pool under faults: the supervisor is one of nginx's processes, so
# nginx's master replaces it when it dies, and nothing it started outlives
# it, whatever user its processes run as.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::Gateway;

sub alive { my @pids = @_; return grep { kill 0, $_ } @pids }

sub pid_of { my ($r) = @_; return ($r->{body} =~ /pid=(\d+)/)[0] // 0 }

run_tests();

__DATA__

=== TEST 1: kill -9 of the supervisor: its processes die with it (as nginx's user and as user=), nginx logs it at alert and starts another, and the pools serve again
--- user_files
>>> pid.py
import os
def application(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [('pid=%d uid=%d' % (os.getpid(), os.getuid())).encode()]
--- http_config
rust_pool plain processes=2;
rust_pool asdaemon processes=1 user=daemon;
--- config
location /plain { rust_wsgi $TEST_NGINX_HTML_DIR/pid.py pool=plain; }
location /daemon { rust_wsgi $TEST_NGINX_HTML_DIR/pid.py pool=asdaemon; }
--- perl
plan skip_all => 'user= needs nginx to run as root' if $> != 0;
my ($daemon_uid) = (getpwnam('daemon'))[2];
is(http_get('/plain')->{status}, 200, 'the pool serves');
like(http_get('/daemon')->{body}, qr/uid=$daemon_uid$/, 'the other pool serves as daemon');
my ($sup) = supervisor_pids();
ok($sup, "a supervisor ($sup), nginx's master's child");
my @old = pool_pids();
is(scalar @old, 3, 'three pool processes');
kill 'KILL', $sup;
ok(wait_for(sub { !main::alive(@old) }, 30), 'every pool process died with the supervisor, the user=daemon one too');
# A request while no process is ready waits for one (queue_timeout), it
# does not hang: an answer either way.
my $during = http_get('/plain', timeout => 60);
ok($during->{status} == 200 || $during->{status} == 503, "a request meanwhile is answered ($during->{status})");
my $new;
ok(wait_for(sub { ($new) = supervisor_pids(); $new && $new != $sup }, 30), "nginx started another supervisor ($new)");
my $r;
ok(wait_for(sub { $r = http_get('/plain'); $r->{status} == 200 }, 30), 'the pool serves again');
ok(!(grep { $_ == main::pid_of($r) } @old), 'from a new process');
like(http_get('/daemon')->{body}, qr/uid=$daemon_uid$/, 'and the user= pool too');
ok(wait_for(sub { scalar(pool_pids()) == 3 }, 30), 'three pool processes again');
like(error_log_text(), qr/\[alert\].*rust pool supervisor $sup exited on signal 9/, 'nginx logged the death at alert');
--- expected_alerts
exited on signal 9

=== TEST 2: the supervisor lives across reloads, and its unchanged pools keep their processes
--- http_config
rust_pool r processes=2;
--- config
location / { rust_wsgi $TEST_NGINX_APPS/hello.py pool=r; }
--- perl
is(http_get('/')->{status}, 200, 'served');
my ($sup) = supervisor_pids();
my @pool = sort { $a <=> $b } pool_pids();
is(scalar @pool, 2, 'two processes');
my @workers = worker_pids();
nginx_reload();
ok(wait_for(sub { my @w = worker_pids(); @w && !grep { my $o = $_; grep { $_ == $o } @w } @workers }, 30), 'new workers');
is(http_get('/')->{status}, 200, 'served after the reload');
is(join(',', supervisor_pids()), $sup, 'the same supervisor');
is(join(',', sort { $a <=> $b } pool_pids()), join(',', @pool), 'the same pool processes');
unlike(error_log_text(), qr/rust pool supervisor \d+ exited/, 'the supervisor was not told to quit with the old workers');

=== TEST 3: nginx -s quit waits for the supervisor, which stops its pools: nothing is left when the master is gone
--- http_config
rust_pool q processes=2;
--- config
location / { rust_wsgi $TEST_NGINX_APPS/hello.py pool=q; }
--- perl
is(http_get('/')->{status}, 200, 'served');
my ($sup) = supervisor_pids();
my @pool = pool_pids();
kill 'QUIT', nginx_pid();
ok(nginx_wait_exit(30), 'nginx quits');
ok(!main::alive($sup, @pool), 'the supervisor and its processes were gone before the master');
like(error_log_text(), qr/rust pool supervisor $sup exited with code 0/, 'the master reaped the supervisor');

=== TEST 4: timeout= counts from when the app has the whole request: a slow transfer of an upload to the pool process is not the app's time
--- http_config
rust_pool u processes=1 threads=2 timeout=1s;
--- config
client_max_body_size 64m;
client_body_buffer_size 1m;
location / { rust_wsgi $TEST_NGINX_APPS/echo.py pool=u; }
--- perl
is(http_get('/')->{status}, 200, 'served');
my ($pool) = pool_pids();
# Stopped, the process takes no more of the 8 MiB than its socket holds:
# nginx's transfer stalls for as long as it stays stopped, well past the
# 1 s timeout.
kill 'STOP', $pool;
my $body = 'x' x (8 << 20);
my $s = http_start("POST /?how=read HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: " . length($body) . "\r\n\r\n$body");
sleep 3;
kill 'CONT', $pool;
my $r = http_finish($s, timeout => 60);
is($r->{status}, 200, 'the upload is served once the process goes on');
is(length $r->{body}, length $body, 'all of it');
is(scalar(pool_pids()), 1, 'and the process was not replaced');
is((pool_pids())[0], $pool, 'the same one');

=== TEST 5: an ASGI app past its pool's timeout: 504, logged under rust_asgi
--- http_config
rust_pool a processes=1 timeout=1s;
--- config
location / { rust_asgi $TEST_NGINX_APPS/asgiraw.py pool=a; }
--- perl
# It sleeps 30 s, past the client's 10: a 504 can only be the timeout.
is(http_get('/sleep?30')->{status}, 504, '504 at the pool\'s timeout');
like(error_log_text(), qr/rust_asgi: the app did not finish within the timeout= of rust_pool "a" \(1000 ms\)/, 'logged as rust_asgi, naming the pool and its timeout');
unlike(error_log_text(), qr/rust_wsgi:/, 'never as rust_wsgi');

=== TEST 6: one app of a pool fails to import: its locations answer 500 with its traceback, the pool's other apps serve; no crash loop
--- http_config
rust_pool mixed processes=2;
--- config
location /good { rust_wsgi $TEST_NGINX_APPS/hello.py pool=mixed; }
location /bad { rust_wsgi $TEST_NGINX_APPS/broken.py pool=mixed; }
--- perl
my $good;
ok(wait_for(sub { $good = http_get('/good'); $good->{status} == 200 }, 30), 'the good app serves');
is($good->{body}, 'Hello, world!', 'its answer');
is(http_get('/bad')->{status}, 500, 'the broken app answers 500');
is(http_get('/good')->{status}, 200, 'and the good one still serves');
is(scalar(pool_pids()), 2, 'both processes stay');
my $log = error_log_text();
like($log, qr/SyntaxError/, 'the traceback is logged');
# Each process imports on its own; both say so once they have.
my $count = sub { my @l = error_log_text() =~ /broken\.py" failed to import; its locations answer 500/g; scalar @l };
ok(wait_for(sub { $count->() >= 2 }, 30), 'each process logged the failure');
is($count->(), 2, 'once per process');
unlike($log, qr/crash loop/, 'no crash loop');

=== TEST 7: new code that breaks one app of a pool: the previous processes keep serving every app
--- setup
write_wsgi_app(servroot() . '/html/b.py', 'b1');
--- http_config
rust_pool pair processes=1;
--- config
location /a { rust_wsgi $TEST_NGINX_APPS/hello.py pool=pair; }
location /b { rust_wsgi $TEST_NGINX_HTML_DIR/b.py pool=pair; }
--- perl
is(http_get('/b')->{body}, 'b1', 'b1');
my ($old) = pool_pids();
write_wsgi_app(servroot() . '/html/b.py', 'b2', 'broken');
ok(wait_for(sub { error_log_text() =~ /an app of the new code failed to import/ }, 30), 'the failure is noticed');
is(http_get('/b')->{body}, 'b1', 'the previous version of the broken app keeps serving');
is(http_get('/a')->{body}, 'Hello, world!', 'and the other app');
is(join(',', pool_pids()), $old, 'from the previous process');
write_wsgi_app(servroot() . '/html/b.py', 'b3');
ok(wait_for(sub { http_get('/b')->{body} eq 'b3' }, 30), 'fixed code is picked up');
