# rust_wsgi_reload: new code without nginx -s reload.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::Gateway;

sub write_app {
    my ($path, $body, $sleep) = @_;
    open my $fh, '>', "$path.tmp" or die $!;
    print $fh "import time\n";
    print $fh "def application(environ, start_response):\n";
    print $fh "    if environ['PATH_INFO'] == '/slow': time.sleep(1.5)\n";
    print $fh "    start_response('200 OK', [('Content-Type', 'text/plain')])\n";
    print $fh "    return [b'$body']\n";
    close $fh;
    chmod 0644, "$path.tmp";
    rename "$path.tmp", $path or die $!;    # atomically, as deploy tools do
}

run_tests();

__DATA__

=== TEST 1: by default a changed script serves new code on the next requests; a running request finishes on the old
--- setup
main::write_app(servroot() . '/html/app.py', 'v1');
--- config
location / {
    rust_wsgi $TEST_NGINX_HTML_DIR/app.py;
}
--- perl
use Time::HiRes qw(sleep time);
is(http_get('/')->{body}, 'v1', 'v1 at first');
my $slow = http_start("GET /slow HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
sleep 0.3;
main::write_app(servroot() . '/html/app.py', 'v2');
# The file is checked once a second: a later request runs v2 (the guard
# only ends a hang).
my $body = '';
wait_for(sub { $body = http_get('/')->{body}; $body eq 'v2' }, 30);
is($body, 'v2', 'v2 is served');
is(http_finish($slow)->{body}, 'v1', 'the request running during the change finished on v1');
--- error_log eval
qr/\[notice\] .*rust_wsgi: reloaded ".*app.py" after it changed/


=== TEST 2: new code that fails to import: the old version keeps serving, the traceback is logged once
--- setup
main::write_app(servroot() . '/html/app.py', 'v1');
--- config
location / {
    rust_wsgi $TEST_NGINX_HTML_DIR/app.py;
}
--- perl
use Time::HiRes qw(sleep);
is(http_get('/')->{body}, 'v1', 'v1 at first');
my $path = servroot() . '/html/app.py';
open my $fh, '>', $path or die $!;
print $fh "def application(environ, start_response)\n    return [b'broken']\n";
close $fh;
my @answers;
for (1 .. 15) {
    my $r = http_get('/');
    push @answers, "$r->{status} $r->{body}";
    sleep 0.2;
}
is_deeply(\@answers, [('200 v1') x 15], 'v1 answered every request for 3 s');
my $count = () = error_log_text() =~ /SyntaxError/g;
is($count, 1, 'the traceback was logged once');
main::write_app($path, 'v3');
sleep 1.2;
is(http_get('/')->{body}, 'v3', 'fixed code replaces the old version');
--- error_log eval
qr/rust_wsgi: cannot reload \(the previous version keeps serving\) ".*app.py"/


=== TEST 3: reload under load: every response is 200 and either the old or the new body
--- setup
main::write_app(servroot() . '/html/app.py', 'old');
--- config
location / {
    rust_wsgi $TEST_NGINX_HTML_DIR/app.py;
}
--- perl
my ($bad, $seen, $new_after) = changed_under_load(
    seconds => 3.5, change_after => 1, old => 'old', new => 'new',
    change => sub { main::write_app(servroot() . '/html/app.py', 'new') },
);
ok(!$bad, 'no failed or mixed response') or diag(explain($seen));
ok($seen->{old} && $seen->{new}, "both versions served ($seen->{old} old, $seen->{new} new)");
ok($new_after > 0 && $new_after < 2, sprintf('the new body appeared %.2f s after the change', $new_after));

=== TEST 4: rust_wsgi_reload off keeps the imported code
--- setup
main::write_app(servroot() . '/html/app.py', 'v1');
--- config
location / {
    rust_wsgi $TEST_NGINX_HTML_DIR/app.py;
    rust_wsgi_reload off;
}
--- perl
use Time::HiRes qw(sleep);
is(http_get('/')->{body}, 'v1', 'v1 at first');
main::write_app(servroot() . '/html/app.py', 'v2');
sleep 1.5;
http_get('/');
is(http_get('/')->{body}, 'v1', 'still v1');


=== TEST 5: the script is stat()ed at most once per second, not per request
--- setup
main::write_app(servroot() . '/html/app.py', 'v1');
--- config
location / {
    rust_wsgi $TEST_NGINX_HTML_DIR/app.py;
}
--- perl
use Time::HiRes qw(sleep time);
is(http_get('/')->{body}, 'v1', 'warm');
my ($worker) = worker_pids();
my $trace = servroot() . '/logs/strace.txt';
my $pid = fork // die;
if (!$pid) {
    exec 'strace', '-f', '-qq', '-e', 'trace=stat,newfstatat,statx,lstat', '-o', $trace, '-p', $worker;
    exit 127;
}
sleep 0.5;
my $t0 = time;
my $n = 0;
while (time - $t0 < 2) { http_get('/'); $n++ }
kill 'INT', $pid;
waitpid $pid, 0;
my $stats = () = (do { local (@ARGV, $/) = $trace; <> } // '') =~ /app\.py/g;
cmp_ok($n, '>', 50, "$n requests in 2 s");
cmp_ok($stats, '>=', 1, "the script was checked ($stats stat calls)");
cmp_ok($stats, '<=', 3, 'at most about one per second');


=== TEST 6: the same app with two different reload settings fails nginx -t
--- config
location /a {
    rust_wsgi $TEST_NGINX_APPS/hello.py;
}
location /b {
    rust_wsgi $TEST_NGINX_APPS/hello.py;
    rust_wsgi_reload off;
}
--- must_die
--- error_log eval
qr/".*hello.py" is served by locations with different rust_wsgi_reload settings/


=== TEST 7: a bad rust_wsgi_reload value fails nginx -t
--- config
location / {
    rust_wsgi $TEST_NGINX_APPS/hello.py;
    rust_wsgi_reload sometimes;
}
--- must_die
--- error_log eval
qr/"rust_wsgi_reload sometimes": use script, off or directory=\/path\/to\/code in .*nginx.conf:\d+/


=== TEST 8: directory reload: a changed module recycles the worker; running requests finish first
--- setup
system('cp', '-r', servroot() . '/apps/tree', servroot() . '/html/tree') == 0 or die;
system('chmod', '-R', 'a+rX', servroot() . '/html/tree');
--- config
location / {
    rust_wsgi $TEST_NGINX_HTML_DIR/tree/app.py;
    rust_wsgi_reload directory=$TEST_NGINX_HTML_DIR/tree;
}
--- perl
use Time::HiRes qw(sleep time);
my $r = http_get('/');
is($r->{body}, 'tree v1', 'v1 at first');
my $old_pid = $r->{headers}{'x-pid'}[0];
my $slow = http_start("GET /slow HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
sleep 0.3;
my $module = servroot() . '/html/tree/pkg/greeting.py';
open my $fh, '>', $module or die $!;
print $fh "TEXT = 'tree v2'\n";
close $fh;
is(http_finish($slow)->{body}, 'tree v1', 'the running request finished on the old code');
my $t0 = time;
my $body = '';
while (time - $t0 < 5) {
    $r = http_get('/');
    $body = $r->{body};
    last if $body eq 'tree v2';
    sleep 0.1;
}
is($body, 'tree v2', 'the new module is served');
isnt($r->{headers}{'x-pid'}[0], $old_pid, 'by a fresh worker');
--- error_log eval
[
  qr/\[notice\] .*rust_wsgi: ".*tree\/pkg\/greeting.py" changed; recycling this worker/,
  qr/worker process \d+ exited with code 0/,
]
