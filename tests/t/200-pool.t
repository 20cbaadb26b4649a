# rust_pool: apps in processes the module supervises, outside nginx's workers.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::Gateway;

sub alive { my @pids = @_; return grep { kill 0, $_ } @pids }

sub pid_of { my ($r) = @_; return ($r->{body} =~ /pid=(\d+)/)[0] // 0 }

run_tests();

__DATA__

=== TEST 1: a pool serves the app from its own processes, with the same environ as embedded mode
--- http_config
rust_pool env processes=2 threads=2;
--- config
location /embedded/ {
    rust_wsgi $TEST_NGINX_APPS/environ.py;
}
location /pooled/ {
    rust_wsgi $TEST_NGINX_APPS/environ.py pool=env;
}
--- perl
use JSON::PP;
my $req = sub {
    my ($prefix) = @_;
    my $body = 'x' x 10;
    my $r = http_request("POST $prefix/a%20b/c?q=1&r=%C3%A9 HTTP/1.1\r\nHost: example.test\r\nX-Trace: 1\r\n"
        . "X-Trace: 2\r\nCookie: a=1\r\nCookie: b=2\r\nContent-Type: text/plain\r\nContent-Length: 10\r\nConnection: close\r\n\r\n$body");
    is($r->{status}, 200, "$prefix answers");
    return decode_json($r->{body});
};
my $embedded = $req->('/embedded');
my $pooled = $req->('/pooled');
for my $env ($embedded, $pooled) {
    delete $env->{REMOTE_PORT};
    $env->{SCRIPT_NAME} =~ s{^/(embedded|pooled)}{/PREFIX};
    $env->{$_} =~ s{/(embedded|pooled)/}{/PREFIX/} for qw(REQUEST_URI RAW_URI);
}
is_deeply($pooled, $embedded, 'the environ is the same, key for key');
is($pooled->{PATH_INFO}, '/a b/c', 'PATH_INFO decoded');
is($pooled->{HTTP_X_TRACE}, '1, 2', 'repeated headers joined');
is($pooled->{HTTP_COOKIE}, 'a=1; b=2', 'cookies joined with ;');
my @pool = pool_pids();
is(scalar @pool, 2, 'two pool processes run');
my @workers = worker_pids();
isnt($pool[0], $workers[0], 'they are not nginx workers');
--- no_error_log
[error]


=== TEST 2: request bodies stream in and responses stream out, large ones too
--- http_config
rust_pool p processes=1 threads=2;
client_max_body_size 20m;
--- config
location / {
    rust_wsgi $TEST_NGINX_APPS/echo.py pool=p;
}
location /stream {
    rust_wsgi $TEST_NGINX_APPS/stream.py pool=p;
}
--- perl
use Digest::SHA qw(sha256_hex);
my $data = join '', map { chr(($_ * 7) % 256) } 1 .. 3_000_000;
my $r = http_request("POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: " . length($data) . "\r\nConnection: close\r\n\r\n$data");
is($r->{status}, 200, 'a 3 MB upload is served');
is(sha256_hex($r->{body}), sha256_hex($data), 'and echoed back intact');
$r = http_get('/stream?n=20000');
is($r->{status}, 200, 'a streamed response');
my @lines = split /\n/, $r->{body};
is(scalar @lines, 20000, 'all 20000 chunks arrive');
is($lines[-1], 'chunk 19999', 'in order');
is($r->{headers}{'x-custom'}[0], 'yes', 'with the app headers');
--- error_log
stream.py: close() called


=== TEST 3: a process that exits or segfaults mid-request gives 502 naming how it died, and the pool recovers
--- http_config
rust_pool c processes=1 threads=2;
--- config
location / {
    rust_wsgi $TEST_NGINX_APPS/crash.py pool=c;
}
--- perl
my $r = http_get('/exit');
is($r->{status}, 502, 'os._exit: 502');
$r = http_get('/segv');
is($r->{status}, 502, 'SIGSEGV: 502');
ok(wait_for(sub { http_get('/')->{status} == 200 }, 5), 'the pool serves again');
my $log = error_log_text();
like($log, qr/\[error\] .*rust_pool "c": process \d+ closed the connection before its response: it exited with code 7, client: .*request: "GET \/exit /, 'the exit code is named in the request\'s log line');
like($log, qr/\[error\] .*rust_pool "c": process \d+ closed the connection before its response: it was killed by signal 11 \(Segmentation fault\), client: .*request: "GET \/segv /, 'the signal too');
like($log, qr/rust_pool "c": process \d+ exited with code 7 while serving 1 request\(s\); starting another/, 'the supervisor logs the exit');


=== TEST 4: a process that dies after sending the head: the client connection is closed, not padded
--- http_config
rust_pool c processes=1;
--- config
location / {
    rust_wsgi $TEST_NGINX_APPS/crash.py pool=c;
}
--- perl
my $r = http_request("GET /half HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
is($r->{status}, 200, 'the head had gone out');
ok(!$r->{chunked_complete}, 'the chunked body is not terminated as if complete');
like($r->{body}, qr/^first half/, 'what was sent arrived');
like(error_log_text(), qr/process \d+ closed the connection in the middle of its response: it exited with code 9/, 'logged');


=== TEST 5: kill -9 of nginx's master: no pool process is left
--- http_config
rust_pool k processes=2;
--- config
location / {
    rust_wsgi $TEST_NGINX_APPS/hello.py pool=k;
}
--- perl
is(http_get('/')->{status}, 200, 'served');
my @pool = pool_pids();
is(scalar @pool, 2, 'two pool processes');
my @workers = worker_pids();
kill 'KILL', nginx_pid();
ok(wait_for(sub { !main::alive(@pool) }, 5), 'the pool processes are gone within 5 s');
kill 'KILL', @workers;
nginx_wait_exit(5);


=== TEST 6: nginx -s quit and nginx -s stop leave no pool process
--- http_config
rust_pool q processes=2;
--- config
location / {
    rust_wsgi $TEST_NGINX_APPS/hello.py pool=q;
}
--- perl
is(http_get('/')->{status}, 200, 'served');
my @pool = pool_pids();
is(scalar @pool, 2, 'two pool processes');
kill 'QUIT', nginx_pid();
ok(nginx_wait_exit(10), 'nginx quits');
ok(wait_for(sub { !main::alive(@pool) }, 5), 'and its pool processes are gone');


=== TEST 7: an app that fails to import puts the pool in a crash loop: 503 and a clear log line, not a fork loop
--- http_config
rust_pool b processes=1 queue_timeout=300s;
--- config
location / {
    rust_wsgi $TEST_NGINX_APPS/broken.py pool=b;
}
--- perl
# The queue timeout is far past the client's: a 503 that arrives is the
# crash loop's.
my $r = http_get('/', timeout => 60);
is($r->{status}, 503, 'the answer is 503, from the crash loop, not the queue timeout');
my $log = error_log_text();
like($log, qr/rust_pool "b": crash loop: process \d+ exited with code 3 before it was ready, 3 times in a row; next try in \d+ ms/, 'the crash loop is logged');
like($log, qr/rust_pool "b" process \d+: Traceback/, 'with the traceback');
my $starts = () = $log =~ /started process/g;
cmp_ok($starts, '<=', 5, "no hot fork loop ($starts starts)");


=== TEST 8: an exception in the app: 500, traceback in the request's log line; the process lives on
--- http_config
rust_pool r processes=1;
--- config
location / {
    rust_wsgi $TEST_NGINX_APPS/raises.py pool=r;
}
--- perl
my @before = pool_pids();
my $r = http_get('/');
is($r->{status}, 500, 'the answer is 500');
$r = http_get('/?crlf');
is($r->{status}, 500, 'a header with CRLF: 500');
unlike($r->{raw} // '', qr/pwned/, 'not split');
is_deeply([pool_pids()], \@before, 'the same process serves on');
my $log = error_log_text();
like($log, qr/\[error\] .*ZeroDivisionError: deliberate failure in raises.py, client: .*request: "GET \/ /, 'traceback in the request context');


=== TEST 9: nginx -s reload with a changed process count
--- http_config
rust_pool n processes=1;
--- config
location / {
    rust_wsgi $TEST_NGINX_APPS/hello.py pool=n;
}
--- perl
is(http_get('/')->{status}, 200, 'served');
is(scalar(pool_pids()), 1, 'one process');
my $conf = servroot() . '/conf/nginx.conf';
my $text = do { local (@ARGV, $/) = $conf; <> };
$text =~ s/processes=1/processes=3/;
open my $fh, '>', $conf or die; print $fh $text; close $fh;
nginx_reload();
ok(wait_for(sub { scalar(pool_pids()) == 3 }, 10), 'three processes after the reload');
is(http_get('/')->{status}, 200, 'served after it');
$text =~ s/processes=3/processes=2/;
open $fh, '>', $conf or die; print $fh $text; close $fh;
nginx_reload();
ok(wait_for(sub { scalar(pool_pids()) == 2 }, 10), 'two after another');
--- error_log
the pool's process count went down


=== TEST 10: a location naming an unknown pool fails nginx -t with the fix
--- config
location / {
    rust_wsgi $TEST_NGINX_APPS/hello.py pool=nosuch;
}
--- must_die
--- error_log eval
qr{unknown pool "nosuch"; declare it in the http block with rust_pool nosuch \.\.\. in .*nginx.conf:\d+}


=== TEST 11: bad rust_pool options fail nginx -t with the reason
--- http_config
rust_pool p processes=0;
--- must_die
--- error_log eval
qr{"rust_pool p": "processes=0": must be from 1 to 128 in .*nginx.conf:\d+}


=== TEST 12: rust_wsgi_pool serves the pool's own app=
--- http_config
rust_pool own app=$TEST_NGINX_APPS/hello.py processes=1;
--- config
location / {
    rust_wsgi_pool own;
}
--- request
GET /
--- error_code: 200
--- response_body chomp
Hello, world!


=== TEST 13: rust_wsgi_pool on a pool without app= fails with the fix
--- http_config
rust_pool none processes=1;
--- config
location / {
    rust_wsgi_pool none;
}
--- must_die
--- error_log eval
qr{rust_wsgi_pool none: the pool has no app=; give it one, or write rust_wsgi /path/to/app.py pool=none}


=== TEST 14: changed code rolls through the pool under load: no failed request, old or new body, the new one within seconds
--- setup
write_wsgi_app(servroot() . '/html/app.py', 'v1');
--- http_config
rust_pool roll processes=2 threads=2;
--- config
location / {
    rust_wsgi $TEST_NGINX_HTML_DIR/app.py pool=roll;
}
--- perl
is(http_get('/')->{body}, 'v1', 'v1 at first');
my @old = pool_pids();
my ($bad, $seen, $new_after) = changed_under_load(
    seconds => 6, change_after => 0.5, old => 'v1', new => 'v2',
    change => sub { write_wsgi_app(servroot() . '/html/app.py', 'v2') },
);
is($bad, 0, 'every response was 200 with the old or the new body');
ok($new_after > 0 && $new_after < 4, sprintf('v2 served %.2f s after the change', $new_after));
ok(wait_for(sub { !main::alive(@old) }, 10), 'the old processes are gone');
is(scalar(pool_pids()), 2, 'two processes again');
--- error_log
its code changed; replacing its processes one by one


=== TEST 15: new code that fails to import: the old processes keep serving and the traceback is logged
--- setup
write_wsgi_app(servroot() . '/html/app.py', 'v1');
--- http_config
rust_pool roll processes=1;
--- config
location / {
    rust_wsgi $TEST_NGINX_HTML_DIR/app.py pool=roll;
}
--- perl
use Time::HiRes qw(sleep);
is(http_get('/')->{body}, 'v1', 'v1');
write_wsgi_app(servroot() . '/html/app.py', 'v2', 'broken');
ok(wait_for(sub { error_log_text() =~ /the new code failed to import/ }, 8), 'the failure is noticed');
my $ok = 0;
$ok += http_get('/')->{body} eq 'v1' for 1 .. 20;
is($ok, 20, 'v1 keeps serving');
sleep 1.5;
my $tracebacks = () = error_log_text() =~ /SyntaxError/g;
is($tracebacks, 1, 'the traceback is logged once, not on every retry');
write_wsgi_app(servroot() . '/html/app.py', 'v3');
ok(wait_for(sub { http_get('/')->{body} eq 'v3' }, 8), 'fixed code is picked up');


=== TEST 16: a request past the pool's timeout gets 504 at once, its stack is logged, and the process is replaced
--- http_config
rust_pool t processes=1 threads=2 timeout=1s;
--- config
location /slow {
    rust_wsgi $TEST_NGINX_APPS/slow.py pool=t;
}
location / {
    rust_wsgi $TEST_NGINX_APPS/crash.py pool=t;
}
--- perl
my $before = main::pid_of(http_get('/'));
ok($before, "served by $before");
# The app sleeps 30 s, past the client's 10: a 504 can only be the pool's
# timeout.
my $r = http_get('/slow?s=30');
is($r->{status}, 504, 'the answer is 504, at the timeout');
ok(wait_for(sub { !main::alive($before) }, 8), 'the stuck process is gone');
ok(wait_for(sub { main::pid_of(http_get('/')) && main::pid_of(http_get('/')) != $before }, 8), 'another one serves');
my $log = error_log_text();
like($log, qr/request "\/slow\?s=30" has run for \d+ ms, past the pool's timeout of 1000 ms/, 'the timeout is logged');
like($log, qr/File ".*slow.py", line \d+ in application/, 'with the stuck thread\'s Python stack');
like($log, qr/recycling process $before: a request passed the pool's timeout/, 'and the recycling');


=== TEST 17: a process whose memory grows past max_rss is recycled, gracefully
--- http_config
rust_pool leak processes=1 max_rss=150m;
--- config
location / {
    rust_wsgi $TEST_NGINX_APPS/leak.py pool=leak;
}
--- perl
use Time::HiRes qw(sleep);
my $first = main::pid_of(http_get('/'));
my ($bad, $other) = (0, 0);
for (1 .. 40) {
    my $r = http_get('/');
    $bad++ unless $r->{status} == 200;
    my $pid = main::pid_of($r);
    if ($pid && $pid != $first) { $other = $pid; last }
    sleep 0.2;
}
is($bad, 0, 'no request failed');
ok($other, "a new process took over ($other after $first)");
--- error_log eval
qr/recycling process \d+: its RSS of \d+ MiB is above max_rss/


=== TEST 18: max_requests recycles a process after that many requests
--- http_config
rust_pool mr processes=1 max_requests=5;
--- config
location / {
    rust_wsgi $TEST_NGINX_APPS/crash.py pool=mr;
}
--- perl
use Time::HiRes qw(sleep);
my %pids;
for (1 .. 30) {
    my $r = http_get('/');
    $pids{main::pid_of($r)}++ if $r->{status} == 200;
    sleep 0.1;
}
cmp_ok(scalar(keys %pids), '>=', 2, 'more than one process served');
--- error_log eval
qr/recycling process \d+: it served \d+ requests \(max_requests\)/


=== TEST 19: the status endpoint reports pools and processes in JSON and Prometheus formats, with the numbers the test produced
--- http_config
rust_pool st processes=2 threads=3;
--- config
location / {
    rust_wsgi $TEST_NGINX_APPS/crash.py pool=st;
}
location = /status {
    rust_pool_status;
}
location = /metrics {
    rust_pool_status prometheus;
}
--- perl
use JSON::PP;
use Time::HiRes qw(sleep);
http_get('/') for 1 .. 7;
is(http_get('/exit')->{status}, 502, 'one process killed');
ok(wait_for(sub {
    my $s = decode_json(http_get('/status')->{body});
    my @p = @{ $s->{pools}[0]{processes} };
    @p == 2 && !grep { $_->{state} ne 'ready' || !$_->{rss_bytes} } @p;
}, 5), 'replaced, and both sampled');
sleep 0.3;
my $r = http_get('/status');
is($r->{headers}{'content-type'}[0], 'application/json', 'JSON');
my $status = decode_json($r->{body});
my ($pool) = grep { $_->{name} eq 'st' } @{ $status->{pools} };
ok($pool, 'the pool is listed');
is($pool->{threads}, 3, 'its threads');
is($pool->{restarts}, 1, 'one restart');
is(scalar @{ $pool->{processes} }, 2, 'two processes');
is_deeply([sort { $a <=> $b } map { $_->{pid} } @{ $pool->{processes} }], [pool_pids()], 'their pids');
my $served = 0;
$served += $_->{requests} for @{ $pool->{processes} };
cmp_ok($served, '>=', 0, "requests counted ($served)");
ok((grep { $_->{state} eq 'ready' && $_->{rss_bytes} > 1_000_000 } @{ $pool->{processes} }) == 2, 'both ready, with their RSS');
http_get('/') for 1 .. 5;
sleep 0.2;
my $after = decode_json(http_get('/status')->{body});
my $served_after = 0;
$served_after += $_->{requests} for @{ $after->{pools}[0]{processes} };
is($served_after - $served, 5, 'five more requests counted');
my $m = http_get('/metrics');
like($m->{body}, qr/^rust_pool_restarts_total\{pool="st"\} 1$/m, 'Prometheus: restarts');
like($m->{body}, qr/^rust_pool_process_requests_total\{pool="st",pid="\d+",state="ready"\} \d+$/m, 'Prometheus: per process');
like(http_get('/status?format=prometheus')->{body}, qr/^# TYPE rust_pool_failing gauge$/m, '?format=prometheus');


=== TEST 20: Flask from a pool, with the http block's rust_python_home
--- http_config
rust_python_home $TEST_NGINX_VENV;
rust_pool flask processes=1;
--- config
location /flask/ {
    rust_wsgi $TEST_NGINX_APPS/flaskapp/app.py pool=flask;
}
--- perl
my $r = http_get('/flask/');
is($r->{body}, 'flask index', 'index');
$r = http_get('/flask/json?x=1');
like($r->{body}, qr/"script_root":\s*"\/flask"/, 'SCRIPT_NAME is the location');
like($r->{body}, qr/"x":\s*"1"/, 'query arguments');


=== TEST 21: nginx -s stop (SIGTERM) during a long request leaves no pool process either
--- http_config
rust_pool s processes=2;
--- config
location / {
    rust_wsgi $TEST_NGINX_APPS/slow.py pool=s;
}
--- perl
my @pool = pool_pids();
ok(wait_for(sub { @pool = pool_pids(); @pool == 2 }, 5), 'two pool processes');
my $slow = http_start("GET /?s=60 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
Time::HiRes::sleep(0.3);
kill 'TERM', nginx_pid();
ok(nginx_wait_exit(10), 'nginx stops');
ok(wait_for(sub { !main::alive(@pool) }, 8), 'and its pool processes are gone, the busy one too');


=== TEST 22: rust_cgi after rust_wsgi ... pool= in one location fails nginx -t, as with embedded rust_wsgi
--- http_config
rust_pool p processes=1;
--- config
location / {
    rust_wsgi $TEST_NGINX_APPS/hello.py pool=p;
    rust_cgi;
}
--- must_die
--- error_log eval
qr{"rust_cgi" and "rust_wsgi" cannot serve the same location in .*nginx.conf:\d+}


=== TEST 23: a cached connection to a process that just died is not used: the request waits for the replacement, no 502
--- listen: deferred
--- http_config
rust_pool k processes=1;
--- config
location / {
    rust_wsgi $TEST_NGINX_APPS/crash.py pool=k;
}
--- perl
use Time::HiRes qw(sleep);
# The worker caches a connection to the process. With the worker and the
# supervisor stopped, a request arrives and then the process dies. Resumed,
# the worker takes the request first (deferred accept: in the same turn of
# its event loop, before the dead connection's close handler runs) while
# the table still shows the process ready.
my $r = http_get('/');
my $old = main::pid_of($r);
ok($old, "served by process $old");
my ($worker) = worker_pids();
my @supervisor = supervisor_pids();
is(scalar @supervisor, 1, 'the supervisor');
kill 'STOP', $worker, @supervisor;
my $s = http_start("GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
sleep 0.2;
kill 'KILL', $old;
sleep 0.2;
kill 'CONT', $worker;
sleep 0.3;
kill 'CONT', @supervisor;
$r = http_finish($s);
is($r->{status}, 200, 'the request is served');
my $new = main::pid_of($r);
ok($new && $new != $old, "by the new process $new");


=== TEST 24: user= runs the pool's processes as that user and group, and nginx's workers can still reach them
--- user_files
>>> who.py
import os
def application(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [('%d:%d:%s' % (os.getuid(), os.getgid(), sorted(os.getgroups()))).encode()]
--- http_config
rust_pool asdaemon processes=1 user=daemon:daemon;
rust_pool plain processes=1;
--- config
location /daemon {
    rust_wsgi $TEST_NGINX_HTML_DIR/who.py pool=asdaemon;
}
location /plain {
    rust_wsgi $TEST_NGINX_HTML_DIR/who.py pool=plain;
}
--- perl
plan skip_all => 'user= needs nginx to run as root' if $> != 0;
my ($uid, $gid) = (getpwnam('daemon'))[2, 3];
my $r = http_get('/daemon');
is($r->{status}, 200, 'served');
is($r->{body}, "$uid:$gid:[$gid]", "as daemon ($uid:$gid), with only its own groups");
my ($worker) = worker_pids();
my ($wuid) = (stat "/proc/$worker")[4];
my ($wgid) = (getpwuid($wuid))[3];
like(http_get('/plain')->{body}, qr/^$wuid:$wgid:/, "without user=, as nginx's worker user ($wuid)");


=== TEST 25: max_lifetime recycles a process once it is that old, without a failed request
--- http_config
rust_pool ml processes=1 max_lifetime=2s;
--- config
location / {
    rust_wsgi $TEST_NGINX_APPS/crash.py pool=ml;
}
--- perl
use Time::HiRes qw(sleep time);
my (%pids, $bad);
my $t0 = time;
while (time - $t0 < 5.5) {
    my $r = http_get('/');
    if ($r->{status} == 200) { $pids{main::pid_of($r)}++ } else { $bad++ }
    sleep 0.05;
}
ok(!$bad, 'no request failed');
cmp_ok(scalar(keys %pids), '>=', 2, scalar(keys %pids) . ' processes served in turn');
--- error_log eval
qr/recycling process \d+: it reached max_lifetime/


=== TEST 26: isolation on request: two apps in one worker share module globals (one interpreter); in separate pools they do not
--- http_config
rust_pool pa processes=1;
rust_pool pb processes=1;
--- config
location /a { rust_wsgi $TEST_NGINX_APPS/isolation/a.py; }
location /b { rust_wsgi $TEST_NGINX_APPS/isolation/b.py; }
location /pa { rust_wsgi $TEST_NGINX_APPS/isolation/a.py pool=pa; }
location /pb { rust_wsgi $TEST_NGINX_APPS/isolation/b.py pool=pb; }
--- perl
like(http_get('/a')->{body}, qr/^a pid=/, 'embedded a');
like(http_get('/b')->{body}, qr/^a,b pid=/, 'embedded b sees what a left in the shared module: one interpreter per worker');
like(http_get('/pa')->{body}, qr/^a pid=/, 'pooled a');
my $b = http_get('/pb')->{body};
like($b, qr/^b pid=/, 'pooled b sees only itself: its own process');
my ($pa) = http_get('/pa')->{body} =~ /pid=(\d+)/;
my ($pb) = $b =~ /pid=(\d+)/;
isnt($pa, $pb, 'two processes');


=== TEST 27: a pool app's file response (wsgi.file_wrapper) arrives whole, read into its records as the connection drains
--- http_config
rust_pool p processes=1 threads=2 env=HTML_DIR=$TEST_NGINX_HTML_DIR;
--- config
location / {
    rust_wsgi $TEST_NGINX_APPS/files.py pool=p;
}
--- perl
# Larger than a record and than a read step, and not a multiple of
# either, so steps end in short records and the file in a short read.
my $data = join '', map { chr(($_ * 7) % 256) } 0 .. 300_000;
open my $fh, '>', servroot() . '/html/data.bin' or die $!;
print $fh $data;
close $fh;
chmod 0644, servroot() . '/html/data.bin';
my $r = http_get('/real');
is($r->{status}, 200, 'status');
ok($r->{body} eq $data, 'the whole file arrived intact');
is($r->{headers}{'content-length'}[0], length $data, 'with its length');
$r = http_get('/offset');
ok($r->{body} eq substr($data, 10), 'from the current position');
$r = http_get('/limited');
ok($r->{body} eq substr($data, 0, 100), "as far as the app's Content-Length");
--- no_error_log
read through Python

=== TEST 28: a body nginx holds in memory goes to the pool from where it is (header and content in one send), whole and in order, also when the socket fills mid-record
--- http_config
rust_pool p processes=1 threads=2;
client_max_body_size 20m;
client_body_buffer_size 8m;
--- config
location / {
    rust_wsgi $TEST_NGINX_APPS/echo.py pool=p;
}
--- perl
use Digest::SHA qw(sha256_hex);
# Far more than the socket's buffer, so sends stop part-way through
# records; not a multiple of a record, so the last one is short.
my $data = join '', map { chr(($_ * 13) % 251) } 1 .. 3_000_001;
my $r = http_request(build_request("POST /\n$data"));
is($r->{status}, 200, 'a 3 MB body in memory is served');
is(sha256_hex($r->{body}), sha256_hex($data), 'and echoed back intact');
# Chunked: nginx's body arrives in several buffers.
my $chunked = join '', map { sprintf("%x\r\n%s\r\n", length $_, $_) } map { substr($data, $_ * 100_003, 100_003) } 0 .. 9;
$r = http_request("POST / HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n${chunked}0\r\n\r\n");
is($r->{status}, 200, 'a chunked body in memory is served');
is(sha256_hex($r->{body}), sha256_hex(substr($data, 0, 1_000_030)), 'and echoed back intact');

=== TEST 29: after a burst of uploads, an idle pool process gives the bodies' memory back
--- http_config
rust_pool p processes=1 threads=2;
client_max_body_size 2m;
client_body_buffer_size 2m;
--- config
location / {
    rust_wsgi $TEST_NGINX_APPS/gate.py pool=p;
}
--- timeout: 90
--- perl
# Both threads wait at a gate while fourteen more 1 MiB uploads arrive:
# the process keeps each body whole until a thread takes its request, so
# it holds about 14 MiB at once. Then the gate opens.
my $gate = servroot() . "/tmp/gate-open";
my $r = http_request(build_request("POST /\nb"));
is($r->{body}, '1', 'warm: the app is loaded (no gate)');
my ($pool) = pool_pids();
my $rss = sub { open my $fh, '<', "/proc/$pool/smaps_rollup" or return 0; while (<$fh>) { return $1 if /^Rss:\s+(\d+) kB/ } 0 };
my $waiting = sub { scalar(() = error_log_text() =~ /gate: waiting/g) };
my $data = 'b' x (1 << 20);
my $post = build_request("POST /?gate=$gate\n$data");
my $before = $rss->();
my $seen = $waiting->();
my @s = map { http_start($post) } 1 .. 2;
ok(wait_for(sub { $waiting->() >= $seen + 2 }, 60), 'both threads wait at the gate');
push @s, map { http_start($post) } 1 .. 14;
ok(wait_for(sub { $rss->() > $before + (12 << 10) }, 60), sprintf('the queued bodies are held at once (%.1f MiB, %.1f before)', $rss->() / 1024, $before / 1024));
open my $fh, '>', $gate or die "$gate: $!";
close $fh;
my @ok = grep { ($_->{status} // 0) == 200 && $_->{body} eq length $data } map { http_finish($_, timeout => 60) } @s;
is(scalar @ok, 16, 'then all sixteen are served');
ok(wait_for(sub { $rss->() < $before + (4 << 10) }, 30), sprintf('idle, the process is back near its size before (%.1f MiB now)', $rss->() / 1024));


=== TEST 30: a bad spin= fails nginx -t with the fix
--- http_config
rust_pool p spin=20ms;
--- must_die
--- error_log eval
qr{"rust_pool p": "spin=20ms": spin takes a time of at most 10ms, such as 100us, or 0 to turn it off in .*nginx.conf:\d+}


=== TEST 31: spin=0 (threads sleep as soon as they run out of requests) and spin=10ms serve one request after another and many at once
--- http_config
rust_pool sleepy processes=1 threads=2 spin=0;
rust_pool eager processes=1 threads=2 spin=10ms;
--- config
location /sleepy/ {
    rust_wsgi $TEST_NGINX_APPS/echo.py pool=sleepy;
}
location /eager/ {
    rust_wsgi $TEST_NGINX_APPS/echo.py pool=eager;
}
--- perl
for my $pool (qw(sleepy eager)) {
    my @bodies = map { "$pool request $_" } 1 .. 20;
    my @answers = map { http_request(build_request("POST /$pool/\n$_"))->{body} } @bodies[0 .. 9];
    my @s = map { http_start(build_request("POST /$pool/\n$_")) } @bodies[10 .. 19];
    push @answers, map { http_finish($_)->{body} } @s;
    is_deeply(\@answers, \@bodies, "$pool: one after another, then ten at once");
}
