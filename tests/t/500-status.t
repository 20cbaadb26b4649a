# rust_status: every mode's numbers, in JSON and in the Prometheus text
# format, checked against what each test did. Waits are for events (a
# count reached, a tick newer than an action), never for a clock.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::Gateway;
use JSON::PP;
use Time::HiRes ();
use File::Copy ();
use POSIX ();

# The JSON page, and the Prometheus page as { 'name{labels}' => value }.
sub status { return decode_json(http_get('/status')->{body}) }

sub metrics {
    my $r = http_get('/metrics');
    my %m;
    for (split /\n/, $r->{body}) {
        next if /^#/;
        my ($series, $value) = /^(\S+) (\S+)$/ or die "not a sample line: $_";
        die "a series twice: $series" if exists $m{$series};
        $m{$series} = $value;
    }
    return \%m;
}

# The sum of the samples of $name whose labels include every one of %want
# (label values are matched as regexes); undef if there is none.
sub sample {
    my ($m, $name, %want) = @_;
    my $sum;
    for my $series (keys %$m) {
        my ($n, $labels) = $series =~ /^([a-z_]+)(?:\{(.*)\})?$/ or next;
        next unless $n eq $name;
        my %l = ($labels // '') =~ /(\w+)="((?:[^"\\]|\\.)*)"/g;
        next if grep { !defined $l{$_} || $l{$_} !~ /^(?:$want{$_})$/ } keys %want;
        $sum += $m->{$series};
    }
    return $sum;
}

sub app_named {
    my ($s, $re) = @_;
    my @apps = grep { $_->{app} =~ $re } @{ $s->{apps} };
    return $apps[0];
}

sub threads { my ($s) = @_; return (grep { $_->{python_threads} } @{ $s->{workers} })[0]{python_threads} }
sub asgi_worker { my ($s) = @_; return (grep { $_->{asgi_loop} } @{ $s->{workers} })[0] }
sub asgi_loop { my ($s) = @_; return asgi_worker($s)->{asgi_loop} }

run_tests();

__DATA__

=== TEST 1: WSGI: requests, status classes, the time-in-app histogram and a timeout; busy, idle and queued threads while every thread is blocked, and the page answers meanwhile
--- http_config
rust_wsgi_threads 2;
--- config
location /app {
    rust_wsgi $TEST_NGINX_APPS/status_wsgi.py;
}
location /short {
    rust_wsgi $TEST_NGINX_APPS/status_wsgi.py;
    rust_wsgi_read_timeout 300ms;
}
location = /status {
    rust_status;
}
location = /metrics {
    rust_status prometheus;
}
--- perl
my $gate = servroot() . '/tmp/gate';
my $never = servroot() . '/tmp/never';
# 10 requests, 3 of them 500s, each at least 120 ms in the app.
for my $i (1 .. 10) {
    my $want = $i <= 3 ? 500 : 200;
    is(http_get("/app?ms=120&status=$want")->{status}, $want, "request $i: $want");
}
my $s = status();
is(scalar @{ $s->{workers} }, 1, 'one worker');
my $app = main::app_named($s, qr{/status_wsgi\.py$});
ok($app, 'the app is listed') or diag(explain($s));
is($app->{interface}, 'wsgi', 'interface');
is($app->{pool}, '', 'no pool');
is($app->{requests}, 10, 'JSON: 10 requests');
is_deeply($app->{responses}, { '1xx' => 0, '2xx' => 7, '3xx' => 0, '4xx' => 0, '5xx' => 3 }, 'JSON: 7 2xx, 3 5xx');
is($app->{duration_count}, 10, 'JSON: the histogram counts 10');
my %bucket = map { @$_ } @{ $app->{duration_buckets} };
is($bucket{'0.1'}, 0, 'JSON: none took 100 ms or less (each slept 120 ms)');
is($bucket{'+Inf'}, 10, 'JSON: all in +Inf');
cmp_ok($app->{duration_sum_s}, '>=', 1.2, "JSON: the sum is at least 10 x 120 ms ($app->{duration_sum_s})");
is($app->{timeouts}, 0, 'JSON: no timeout yet');
# A thread is busy until it has let go of the request, a moment after the
# response went out.
ok(wait_for(sub { main::threads(main::status())->{busy} == 0 }, 30), 'no thread busy');
my $t = main::threads(main::status());
is_deeply([@$t{qw(total busy idle queued longest_wait_ms)}], [2, 0, 2, 0, 0], 'JSON: 2 idle threads, nothing queued');

my $m = main::metrics();
my %a = (app => '.*/status_wsgi\.py', interface => 'wsgi', pool => '');
is(main::sample($m, 'rust_app_requests_total', %a), 10, 'Prometheus: 10 requests');
is(main::sample($m, 'rust_app_responses_total', %a, class => '2xx'), 7, 'Prometheus: 7 2xx');
is(main::sample($m, 'rust_app_responses_total', %a, class => '5xx'), 3, 'Prometheus: 3 5xx');
is(main::sample($m, 'rust_app_duration_seconds_count', %a), 10, 'Prometheus: histogram count');
is(main::sample($m, 'rust_app_duration_seconds_bucket', %a, le => '0\.1'), 0, 'Prometheus: le=0.1 bucket');
is(main::sample($m, 'rust_app_duration_seconds_bucket', %a, le => '\+Inf'), 10, 'Prometheus: le=+Inf bucket');
cmp_ok(main::sample($m, 'rust_app_duration_seconds_sum', %a), '>=', 1.2, 'Prometheus: histogram sum');
is(main::sample($m, 'rust_python_threads', state => 'idle'), 2, 'Prometheus: 2 idle threads');

# Every thread blocked, one more request queued behind them.
my @held = map { http_start(build_request("GET /app?gate=$gate")) } 1 .. 3;
ok(wait_for(sub { my $t = main::threads(main::status()); $t->{busy} == 2 && $t->{queued} == 1 }, 30),
   'both threads busy and one request queued; the page answers while no thread is free');
ok(wait_for(sub { main::threads(main::status())->{longest_wait_ms} >= 200 }, 30), 'the queued request\'s wait grows');
# The issue's own bound: an answer within a second while no thread is
# free (it is read from memory on nginx's thread: milliseconds).
my $t0 = Time::HiRes::time();
$t = main::threads(main::status());
my $took = Time::HiRes::time() - $t0;
cmp_ok($took, '<', 1, sprintf('the page answered in %.3f s while every thread is blocked', $took));
is_deeply([@$t{qw(total busy idle queued)}], [2, 2, 0, 1], 'JSON: 2 busy, 0 idle, 1 queued');
$m = main::metrics();
is(main::sample($m, 'rust_python_threads', state => 'busy'), 2, 'Prometheus: 2 busy');
is(main::sample($m, 'rust_python_threads', state => 'idle'), 0, 'Prometheus: 0 idle');
is(main::sample($m, 'rust_python_queued_requests'), 1, 'Prometheus: 1 queued');
cmp_ok(main::sample($m, 'rust_python_queue_oldest_wait_seconds'), '>=', 0.2, 'Prometheus: the oldest wait');
is(main::app_named(main::status(), qr{/status_wsgi\.py$})->{requests}, 10, 'requests count when they end');

Test::Gateway::write_file($gate, '');
is($_->{status}, 200, 'a held request answered') for map { http_finish($_) } @held;
ok(wait_for(sub { my $t = main::threads(main::status()); $t->{busy} == 0 && $t->{queued} == 0 }, 30), 'all idle again');

# A request past its read timeout: 504, counted as a timeout.
is(http_get("/short?gate=$never")->{status}, 504, 'a timeout answers 504');
$app = main::app_named(main::status(), qr{/status_wsgi\.py$});
is($app->{requests}, 14, 'JSON: 14 requests');
is($app->{responses}{'5xx'}, 4, 'JSON: 4 5xx');
is($app->{timeouts}, 1, 'JSON: 1 timeout');
$m = main::metrics();
is(main::sample($m, 'rust_app_timeouts_total', %a), 1, 'Prometheus: 1 timeout');
is(main::sample($m, 'rust_app_responses_total', %a, class => '2xx'), 10, 'Prometheus: 10 2xx');
Test::Gateway::write_file($never, '');
--- error_log
the app sent nothing for 300 ms; answering 504


=== TEST 2: counters add up over two workers, each worker is listed with its threads, and reloads and failed reloads are counted
--- workers: 2
--- http_config
rust_wsgi_threads 3;
--- setup
Test::Gateway::write_wsgi_app(servroot() . "/html/reloading.py", "one");
--- config
location / {
    rust_wsgi $TEST_NGINX_HTML_DIR/reloading.py;
}
location = /status {
    rust_status;
}
location = /metrics {
    rust_status prometheus;
}
--- perl
my $dir = servroot() . "/html";
my %pids;
for (1 .. 20) {
    my $r = http_get('/');
    is($r->{body}, 'one', 'served') or diag($r->{raw}) if $_ == 1;
}
# The other worker may answer /status before the last request's worker
# has counted it (it counts once the response is out).
ok(wait_for(sub { main::app_named(main::status(), qr{/reloading\.py$})->{requests} == 20 }, 30), '20 requests counted');
ok(wait_for(sub { !grep { $_->{python_threads}{busy} } @{ main::status()->{workers} } }, 30), 'no thread busy');
my $s = main::status();
is(scalar @{ $s->{workers} }, 2, 'two workers listed');
is_deeply([sort { $a <=> $b } map { $_->{pid} } @{ $s->{workers} }], [worker_pids()], 'with their pids');
is_deeply([map { $_->{python_threads}{total} } @{ $s->{workers} }], [3, 3], 'three threads each');
my $app = main::app_named($s, qr{/reloading\.py$});
is($app->{requests}, 20, 'JSON: 20 requests, whichever worker served them');
is(main::sample(main::metrics(), 'rust_app_requests_total', app => '.*/reloading\.py'), 20, 'Prometheus: 20');
is(scalar(grep { /^rust_python_threads\{pid="\d+",state="idle"\} 3$/ } map { "$_ " . main::metrics()->{$_} } keys %{ main::metrics() }), 2,
   'Prometheus: a series per worker');

# Four clients at once, 50 requests each: not one increment lost between
# the two workers writing the same counters.
my @kids;
for my $k (1 .. 4) {
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        my $bad = grep { $_->{status} != 200 } map { http_get('/') } 1 .. 50;
        POSIX::_exit($bad ? 1 : 0);
    }
    push @kids, $pid;
}
my $bad = 0;
for (@kids) { waitpid($_, 0); $bad++ if $? }
is($bad, 0, 'four concurrent clients, every answer a 200');
ok(wait_for(sub { main::app_named(main::status(), qr{/reloading\.py$})->{requests} == 220 }, 30), 'JSON: all 220 requests counted');
is(main::sample(main::metrics(), 'rust_app_duration_seconds_count', app => '.*/reloading\.py'), 220, 'Prometheus: and in the histogram');

# Each worker reloads its own copy when a request finds the file changed:
# its log says so, once per worker and version.
sub logged { my ($re) = @_; my @l = grep { /$re/ } split /\n/, error_log_text(); return scalar @l }
Test::Gateway::write_wsgi_app("$dir/reloading.py", 'two');
ok(wait_for(sub { http_get('/')->{body} eq 'two' }, 30), 'the new version serves');
http_get('/') for 1 .. 10;
my $reloads = logged(qr/reloaded ".*reloading\.py" after it changed/);
cmp_ok($reloads, '>=', 1, "reloads logged ($reloads)");
is(main::app_named(main::status(), qr{/reloading\.py$})->{reloads}, $reloads, 'JSON: as many reloads as the workers logged');
Test::Gateway::write_wsgi_app("$dir/reloading.py", 'three', 1);
ok(wait_for(sub { http_get('/'); logged(qr/cannot reload \(the previous version keeps serving\)/) >= 1 }, 30), 'a failed reload');
http_get('/') for 1 .. 10;
my $failures = logged(qr/cannot reload \(the previous version keeps serving\)/);
is(main::app_named(main::status(), qr{/reloading\.py$})->{reload_failures}, $failures, "JSON: as many failed reloads as logged ($failures)");
# A worker that had not served since 'two' keeps 'one'.
like(http_get('/')->{body}, qr/^(one|two)$/, 'the previous version keeps serving');
my $m = main::metrics();
is(main::sample($m, 'rust_app_reloads_total', app => '.*/reloading\.py'), $reloads, 'Prometheus: reloads');
is(main::sample($m, 'rust_app_reload_failures_total', app => '.*/reloading\.py'), $failures, 'Prometheus: failed reloads');
--- error_log
cannot reload (the previous version keeps serving)


=== TEST 3: ASGI: the loop's tasks, its open WebSockets and its lag, and the app's requests
--- config
location / {
    rust_asgi $TEST_NGINX_APPS/status_asgi.py:app;
}
location = /status {
    rust_status;
}
location = /metrics {
    rust_status prometheus;
}
--- perl
my $gate = servroot() . '/tmp/gate';
my $unblock = servroot() . '/tmp/unblock';
is(http_get('/?status=200')->{status}, 200, 'a first request');
# A reading taken after that request: the lifespan has started.
my $after = main::asgi_loop(main::status())->{ticks};
ok(wait_for(sub { main::asgi_loop(main::status())->{ticks} > $after }, 30), 'a newer tick');
my $idle = main::asgi_loop(main::status())->{tasks};
my @held = map { http_start(build_request("GET /wait?gate=$gate")) } 1 .. 3;
ok(wait_for(sub { main::asgi_loop(main::status())->{tasks} == $idle + 3 }, 30), "JSON: three more tasks ($idle idle)");
is(main::sample(main::metrics(), 'rust_asgi_loop_tasks'), $idle + 3, 'Prometheus: tasks');
Test::Gateway::write_file($gate, '');
is($_->{status}, 200, 'a waiting request answered') for map { http_finish($_) } @held;
ok(wait_for(sub { main::asgi_loop(main::status())->{tasks} == $idle }, 30), 'JSON: back to the idle tasks');

# A WebSocket, open until the client closes it.
my $ws = http_start("GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    . "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
my $head = '';
while ($head !~ /\r\n\r\n/) { sysread($ws, $head, 1, length $head) or last }
like($head, qr{^HTTP/1.1 101}, 'the WebSocket is open');
is(main::asgi_worker(main::status())->{websockets}, 1, 'JSON: one open WebSocket');
is(main::sample(main::metrics(), 'rust_asgi_open_websockets'), 1, 'Prometheus: one open WebSocket');
close $ws;
ok(wait_for(sub { main::asgi_worker(main::status())->{websockets} == 0 }, 30), 'none once it closed');

# The app blocks the loop: the lag grows while it does, and falls after.
my $blocked = http_start(build_request("GET /block?gate=$unblock"));
ok(wait_for(sub { main::asgi_loop(main::status())->{lag_ms} >= 1500 }, 60), 'JSON: the lag grows while the loop is blocked');
cmp_ok(main::sample(main::metrics(), 'rust_asgi_loop_lag_seconds'), '>=', 1.5, 'Prometheus: the lag');
Test::Gateway::write_file($unblock, '');
is(http_finish($blocked)->{status}, 200, 'the blocking request answered');
ok(wait_for(sub { main::asgi_loop(main::status())->{lag_ms} < 1000 }, 60), 'the lag falls once the loop runs again');

is(http_get('/?status=503')->{status}, 503, 'a 503');
my $app = main::app_named(main::status(), qr{/status_asgi\.py:app$});
is($app->{interface}, 'asgi', 'interface');
is($app->{requests}, 6, 'JSON: 6 requests (the WebSocket is counted as open, not as a request)');
is($app->{responses}{'2xx'}, 5, 'JSON: 5 2xx');
is($app->{responses}{'5xx'}, 1, 'JSON: 1 5xx');
is($app->{duration_count}, 6, 'JSON: histogram count');
my $m = main::metrics();
is(main::sample($m, 'rust_app_requests_total', interface => 'asgi'), 6, 'Prometheus: 6 requests');
is(main::sample($m, 'rust_app_responses_total', interface => 'asgi', class => '5xx'), 1, 'Prometheus: 1 5xx');


=== TEST 4: CGI: programs running, spawned, timed out, and process groups killed
--- config
root $TEST_NGINX_SERVROOT;
location /cgi-bin/ {
    rust_cgi;
    rust_cgi_timeout 500ms;
    rust_cgi_kill_grace 300ms;
    rust_cgi_param PIDFILE $TEST_NGINX_SERVROOT/tmp/pids;
}
location /held/ {
    alias $TEST_NGINX_SERVROOT/cgi-bin/;
    rust_cgi;
    rust_cgi_kill_grace 300ms;
    rust_cgi_param PIDFILE $TEST_NGINX_SERVROOT/tmp/held.pids;
}
location = /status {
    rust_status;
}
location = /metrics {
    rust_status prometheus;
}
--- perl
is(http_get("/cgi-bin/hello.sh")->{status}, 200, 'hello') for 1 .. 3;
ok(wait_for(sub { main::status()->{cgi}{running} == 0 }, 30), 'none running once they exited');
my $c = main::status()->{cgi};
is_deeply([@$c{qw(spawned running timed_out killed_groups)}], [3, 0, 0, 0], 'JSON: 3 spawned');

# One that runs until its client leaves.
my $held = http_start(build_request('GET /held/hang.sh'));
ok(wait_for(sub { -s servroot() . '/tmp/held.pids' }, 30), 'the held program started');
is(main::status()->{cgi}{running}, 1, 'JSON: 1 running');
is(main::sample(main::metrics(), 'rust_cgi_programs_running'), 1, 'Prometheus: 1 running');
close $held;
ok(wait_for(sub { main::status()->{cgi}{running} == 0 }, 30), 'not running once killed');

# One past its timeout (hang.sh never answers).
is(http_get('/cgi-bin/hang.sh')->{status}, 504, 'a timeout');
# One that leaves a child ignoring SIGTERM: its group gets SIGKILL.
is(http_get('/cgi-bin/background.sh?null+ignore')->{status}, 200, 'a program that leaves a child');
ok(wait_for(sub { main::status()->{cgi}{killed_groups} == 1 }, 30), 'JSON: one group killed');
ok(wait_for(sub { main::status()->{cgi}{running} == 0 }, 30), 'none running');
# A program whose exec fails: not spawned, not left running, a 500.
is(http_get('/cgi-bin/bad-interpreter.sh')->{status}, 500, 'an exec that fails');
ok(wait_for(sub { main::status()->{cgi}{running} == 0 }, 30), 'none running');
is(main::app_named(main::status(), qr{/bad-interpreter\.sh$})->{responses}{'5xx'}, 1, 'JSON: its 500 is counted');
$c = main::status()->{cgi};
is_deeply([@$c{qw(spawned running timed_out killed_groups)}], [6, 0, 1, 1], 'JSON: 6 spawned, 1 timed out, 1 group killed');
my $m = main::metrics();
is(main::sample($m, 'rust_cgi_spawned_total'), 6, 'Prometheus: spawned');
is(main::sample($m, 'rust_cgi_timeouts_total'), 1, 'Prometheus: timed out');
is(main::sample($m, 'rust_cgi_killed_groups_total'), 1, 'Prometheus: killed groups');
my $hello = main::app_named(main::status(), qr{/hello\.sh$});
is($hello->{interface}, 'cgi', 'a CGI program is an app');
is($hello->{requests}, 3, 'JSON: its requests');
is(main::app_named(main::status(), qr{/hang\.sh$})->{timeouts}, 1, 'JSON: the timeout, under its program');
is(main::sample($m, 'rust_app_requests_total', app => '.*/hello\.sh', interface => 'cgi'), 3, 'Prometheus: its requests');
--- error_log
sending SIGKILL
exec: No such file or directory


=== TEST 5: a pool: its app's requests under the pool's name, and the page answers while every pool thread is blocked
--- http_config
rust_pool st processes=1 threads=2;
--- config
location / {
    rust_wsgi $TEST_NGINX_APPS/status_wsgi.py pool=st;
}
location = /status {
    rust_status;
}
location = /metrics {
    rust_status prometheus;
}
--- perl
my $gate = servroot() . '/tmp/gate';
ok(wait_for(sub { my $p = main::status()->{pools}[0]; $p && $p->{running} == 1 }, 30), 'the pool process is ready');
is(http_get('/?status=404')->{status}, 404, 'a 404');
is(http_get('/')->{status}, 200, 'a 200');
my @held = map { http_start(build_request("GET /?gate=$gate")) } 1 .. 2;
ok(wait_for(sub { my $p = main::status()->{pools}[0]; $p->{busy} == 1 && $p->{processes}[0]{active} == 2 }, 30),
   'both threads of the one process busy; the page answers');
my $m = main::metrics();
is(main::sample($m, 'rust_pool_processes_busy', pool => 'st'), 1, 'Prometheus: the process busy');
is(main::sample($m, 'rust_pool_processes_min', pool => 'st'), 1, 'Prometheus: min');
is(main::sample($m, 'rust_pool_processes_max', pool => 'st'), 1, 'Prometheus: max');
is(main::sample($m, 'rust_pool_process_active_requests', pool => 'st'), 2, 'Prometheus: 2 active requests');
Test::Gateway::write_file($gate, '');
is($_->{status}, 200, 'held request answered') for map { http_finish($_) } @held;
my $app = main::app_named(main::status(), qr{/status_wsgi\.py$});
is($app->{pool}, 'st', 'the app is listed under its pool');
is($app->{requests}, 4, 'JSON: 4 requests');
is_deeply([@{ $app->{responses} }{qw(2xx 4xx)}], [3, 1], 'JSON: 3 2xx, 1 4xx');
is(main::sample(main::metrics(), 'rust_app_requests_total', pool => 'st'), 4, 'Prometheus: 4 requests');


=== TEST 6: a program pool (php-cgi): its requests under the program and the pool, as fastcgi
--- user_files
>>> www/hello.php
<?php http_response_code(isset($_GET['s']) ? (int)$_GET['s'] : 200); echo "hello\n";
--- http_config
rust_pool php program=/usr/bin/php-cgi processes=1 env=PHP_FCGI_MAX_REQUESTS=0;
--- config
location ~ \.php$ {
    root $TEST_NGINX_HTML_DIR/www;
    include rust_fastcgi.conf;
    rust_fastcgi_pass php;
}
location = /status {
    rust_status;
}
location = /metrics {
    rust_status prometheus;
}
--- perl
is(http_get('/hello.php')->{status}, 200, 'PHP answers') for 1 .. 2;
is(http_get('/hello.php?s=404')->{status}, 404, 'a 404 from PHP');
my $app = main::app_named(main::status(), qr{php-cgi});
ok($app, 'the program is listed') or diag(explain(main::status()));
is($app->{interface}, 'fastcgi', 'interface: fastcgi');
is($app->{pool}, 'php', 'its pool');
is($app->{requests}, 3, 'JSON: 3 requests');
is_deeply([@{ $app->{responses} }{qw(2xx 4xx)}], [2, 1], 'JSON: 2 2xx, 1 4xx');
my $m = main::metrics();
is(main::sample($m, 'rust_app_requests_total', interface => 'fastcgi', pool => 'php'), 3, 'Prometheus: 3 requests');
is(main::sample($m, 'rust_app_duration_seconds_count', interface => 'fastcgi', pool => 'php'), 3, 'Prometheus: histogram count');
is(main::sample($m, 'rust_pool_process_requests_total', pool => 'php'), 3, 'Prometheus: the process served 3');


=== TEST 7: counters keep counting across nginx -s reload; the old workers leave the list, the new ones join it
--- workers: 2
--- config
location / {
    rust_wsgi $TEST_NGINX_APPS/status_wsgi.py;
}
location = /status {
    rust_status;
}
location = /metrics {
    rust_status prometheus;
}
--- perl
is(http_get('/')->{status}, 200, 'served') for 1 .. 5;
my @old = sort { $a <=> $b } worker_pids();
is_deeply([sort { $a <=> $b } map { $_->{pid} } @{ main::status()->{workers} }], \@old, 'the workers listed');
nginx_reload();
my %old = map { $_ => 1 } @old;
ok(wait_for(sub { my @w = worker_pids(); @w == 2 && !grep { $old{$_} } @w }, 60), 'new workers, the old ones gone');
my @new = sort { $a <=> $b } worker_pids();
ok(wait_for(sub { join(' ', sort { $a <=> $b } map { $_->{pid} } @{ main::status()->{workers} }) eq "@new" }, 60),
   'the new workers are listed, the old ones not');
is(http_get('/')->{status}, 200, 'served after the reload') for 1 .. 5;
ok(wait_for(sub { main::app_named(main::status(), qr{/status_wsgi\.py$})->{requests} == 10 }, 30), 'JSON: 10 requests, across the reload');
is(main::sample(main::metrics(), 'rust_app_requests_total', app => '.*/status_wsgi\.py'), 10, 'Prometheus: 10');


=== TEST 8: Prometheus' own promtool accepts the page with every mode in it: the text format, and its naming rules
--- http_config
rust_pool st processes=1 threads=2;
--- config
root $TEST_NGINX_SERVROOT;
location /wsgi {
    rust_wsgi $TEST_NGINX_APPS/status_wsgi.py;
}
location /asgi {
    rust_asgi $TEST_NGINX_APPS/status_asgi.py:app;
}
location /pool {
    rust_wsgi $TEST_NGINX_APPS/status_wsgi.py pool=st;
}
location /cgi-bin/ {
    rust_cgi;
}
location = /metrics {
    rust_status prometheus;
}
--- setup
# A program whose name needs escaping in a label value.
File::Copy::copy(servroot() . '/cgi-bin/hello.sh', servroot() . '/cgi-bin/q"x.sh') or die $!;
chmod 0755, servroot() . '/cgi-bin/q"x.sh';
--- perl
ok(wait_for(sub { http_get('/pool')->{status} == 200 }, 60), 'the pool answers');
is(http_get('/cgi-bin/q%22x.sh')->{status}, 200, 'a program with a quote in its name');
is(http_get($_)->{status}, 200, "$_ answers") for qw(/wsgi /asgi /cgi-bin/hello.sh);
is(http_get("/wsgi?status=404")->{status}, 404, "a 404");
ok(wait_for(sub { defined main::sample(main::metrics(), 'rust_asgi_loop_tasks') }, 30), 'the loop reported');
my $page = http_get('/metrics')->{body};
for my $family (qw(rust_python_threads rust_asgi_loop_lag_seconds rust_app_duration_seconds_bucket rust_cgi_spawned_total rust_pool_processes_busy)) {
    like($page, qr/^$family[{ ]/m, "$family is on the page");
}
like($page, qr/^rust_app_requests_total\{app="[^"]*\/q\\"x\.sh",interface="cgi",pool=""\} 1$/m, 'its label value, escaped');
my $file = servroot() . '/tmp/metrics.txt';
Test::Gateway::write_file($file, $page);
my $out = `promtool check metrics < '$file' 2>&1`;
is($?, 0, 'promtool check metrics passes') or diag($out);
is($out, '', 'and has nothing to say about the names') or diag($out);


=== TEST 9: a bad format fails nginx -t, naming the directive and the fix
--- config
location = /status {
    rust_status yaml;
}
--- must_die
--- error_log eval
qr/"rust_status yaml": give json or prometheus in .*nginx.conf:\d+/
