# rust_cgi: RFC 3875 programs, run without blocking nginx.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::Gateway;

# JSON is not a core Perl module; the environment dumps are flat enough
# for a regex.
sub env_of {
    my ($body) = @_;
    my %env;
    while ($body =~ /"([A-Z_][A-Z0-9_]*)": "((?:[^"\\]|\\.)*)"/g) { $env{$1} //= $2 }
    return \%env;
}

sub alive {
    my ($pid) = @_;
    return 0 unless $pid && -e "/proc/$pid";
    my $stat = do { local (@ARGV, $/) = "/proc/$pid/stat"; <> } // '';
    return $stat !~ /^\d+ \(.*\) Z/;
}

# The live processes of process group $pgid (what `ps -g` lists).
sub group_of {
    my ($pgid) = @_;
    my @pids;
    for my $file (glob '/proc/[0-9]*/stat') {
        open my $fh, '<', $file or next;
        my $stat = do { local $/; <$fh> } // '';
        push @pids, $1 if $stat =~ /^(\d+) \(.*\) (\S) \d+ (\d+)/ && $2 ne 'Z' && $3 == $pgid;
    }
    return @pids;
}

sub read_pids {
    my ($file) = @_;
    my $text = do { local (@ARGV, $/) = $file; <> } // '';
    return split ' ', $text;
}

# Runs background.sh (see there) at $uri, with n=$n in its query naming its
# pid file; returns the response, whether it is whole, and the pids of the
# program and its child.
sub leave_behind {
    my ($uri, $n) = @_;
    my $file = servroot() . "/tmp/background-$n.pids";
    unlink $file;
    # The timeout only guards against a hang: the child sleeps 1000 s.
    my $r = http_get("$uri&n=$n", timeout => 30);
    my $whole = $r->{status} == 200 && $r->{chunked_complete} && $r->{body} eq "left a child behind\n";
    return ($r, $whole, read_pids($file));
}

run_tests();

__DATA__

=== TEST 1: GET: the RFC 3875 variables, PATH_INFO, a raw encoded query string, no HTTPS, Authorization withheld
--- config
root $TEST_NGINX_SERVROOT;
location /cgi-bin/ {
    rust_cgi;
}
--- perl
my $r = http_get('/cgi-bin/env.py/extra/path?q=a%20b%26c&x=%C3%A9', headers => "Authorization: Basic dXNlcjpwdw==\r\nX-Custom: 1\r\nProxy: http://evil.test/");
is($r->{status}, 200, 'status');
my $env = main::env_of($r->{body});
my $root = servroot();
my %want = (
    GATEWAY_INTERFACE => 'CGI/1.1',
    REQUEST_METHOD => 'GET',
    SCRIPT_NAME => '/cgi-bin/env.py',
    SCRIPT_FILENAME => "$root/cgi-bin/env.py",
    PATH_INFO => '/extra/path',
    PATH_TRANSLATED => "$root/extra/path",
    QUERY_STRING => 'q=a%20b%26c&x=%C3%A9',
    REQUEST_URI => '/cgi-bin/env.py/extra/path?q=a%20b%26c&x=%C3%A9',
    DOCUMENT_ROOT => $root,
    SERVER_NAME => 'localhost',
    SERVER_PORT => server_port(),
    SERVER_PROTOCOL => 'HTTP/1.1',
    REMOTE_ADDR => '127.0.0.1',
    REMOTE_HOST => '127.0.0.1',
    REDIRECT_STATUS => '200',
    HTTP_X_CUSTOM => '1',
    HTTP_HOST => 'localhost',
    PATH => '/usr/local/bin:/usr/bin:/bin',
);
for my $name (sort keys %want) {
    is($env->{$name}, $want{$name}, $name);
}
like($env->{REMOTE_PORT}, qr/^\d+$/, 'REMOTE_PORT');
like($env->{SERVER_SOFTWARE}, qr{^ngx-rust-gateway/}, 'SERVER_SOFTWARE');
for my $absent (qw(HTTPS CONTENT_LENGTH CONTENT_TYPE HTTP_AUTHORIZATION HTTP_PROXY AUTH_TYPE REMOTE_USER TZ)) {
    ok(!exists $env->{$absent}, "no $absent");
}
like($r->{body}, qr{"cwd": "\Q$root\E/cgi-bin"}, 'runs in its directory');


=== TEST 2: POST: CONTENT_LENGTH, CONTENT_TYPE and the body on stdin; Authorization passed when allowed
--- config
root $TEST_NGINX_SERVROOT;
location /cgi-bin/ {
    rust_cgi;
    rust_cgi_pass_authorization on;
}
--- perl
my $body = "name=value&other=thing";
my $r = http_request("POST /cgi-bin/env.py HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
    . "Authorization: Bearer tok\r\nContent-Type: application/x-www-form-urlencoded\r\n"
    . "Content-Length: " . length($body) . "\r\n\r\n$body");
my $env = main::env_of($r->{body});
is($env->{REQUEST_METHOD}, 'POST', 'method');
is($env->{CONTENT_LENGTH}, length $body, 'CONTENT_LENGTH');
is($env->{CONTENT_TYPE}, 'application/x-www-form-urlencoded', 'CONTENT_TYPE');
is($env->{HTTP_AUTHORIZATION}, 'Bearer tok', 'Authorization passed');
like($r->{body}, qr/"body": "\Q$body\E"/, 'the body arrived on stdin');


=== TEST 3: a 10 MiB upload piped through cat comes back byte for byte
--- http_config
client_max_body_size 20m;
--- config
root $TEST_NGINX_SERVROOT;
location /cgi-bin/ {
    rust_cgi;
}
--- timeout: 60
--- perl
my $data = join '', map { pack('N', $_ * 2654435761 % 4294967296) } 1 .. (10 * 1048576 / 4);
my $r = http_request("POST /cgi-bin/cat.sh HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
    . "Content-Length: " . length($data) . "\r\n\r\n$data", timeout => 60);
is($r->{status}, 200, 'status');
is(length $r->{body}, length $data, '10 MiB back');
ok($r->{body} eq $data, 'byte for byte');


=== TEST 4: a chunked upload gets a correct CONTENT_LENGTH
--- config
root $TEST_NGINX_SERVROOT;
location /cgi-bin/ {
    rust_cgi;
}
--- raw_request eval
"POST /cgi-bin/env.py HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
. "6\r\nchunk1\r\n7\r\n chunk2\r\n0\r\n\r\n"
--- response_body_like: "CONTENT_LENGTH": "13".*"body": "chunk1 chunk2"


=== TEST 5: 200 MiB streamed to a slow client; the worker's memory stays bounded
--- config
root $TEST_NGINX_SERVROOT;
location /cgi-bin/ {
    rust_cgi;
}
--- timeout: 120
--- perl
use Time::HiRes qw(sleep time);
http_get('/cgi-bin/hello.sh');
my ($worker) = worker_pids();
my $hwm = sub { my $s = do { local (@ARGV, $/) = "/proc/$worker/status"; <> }; $s =~ /VmHWM:\s+(\d+)/ ? $1 : 0 };
my $before = $hwm->();
my $s = http_start("GET /cgi-bin/zeros.sh?200 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
my ($total, $buf, $t0) = (0, '', time);
while (1) {
    my $n = sysread($s, $buf, 1 << 20);
    last unless $n;
    $total += $n;
    sleep 0.005;
}
my $growth = ($hwm->() - $before) / 1024;
cmp_ok($total, '>', 200 * 1048576, sprintf('200 MiB arrived in %.1f s', time - $t0));
cmp_ok($growth, '<', 16, sprintf('peak RSS grew %.1f MiB', $growth));


=== TEST 6: a local redirect is served internally (as GET); a client redirect is a 302
--- config
root $TEST_NGINX_SERVROOT;
location /cgi-bin/ {
    rust_cgi;
}
--- perl
my $r = http_request("POST /cgi-bin/local-redirect.sh HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: 3\r\n\r\nabc");
is($r->{status}, 200, 'local redirect answered by the target');
like($r->{body}, qr/^target: GET from=local$/m, 'target ran, as GET, with the query');
$r = http_get('/cgi-bin/client-redirect.sh');
is($r->{status}, 302, 'client redirect');
is($r->{headers}{location}[0], 'http://example.test/elsewhere', 'Location');


=== TEST 7: nph- programs are passed through raw
--- config
root $TEST_NGINX_SERVROOT;
location /cgi-bin/ {
    rust_cgi;
}
--- perl
my $r = http_get('/cgi-bin/nph-raw.sh');
like($r->{raw}, qr{^HTTP/1.1 299 Raw Status\r\nContent-Type: text/plain\r\nX-Nph: yes\r\n\r\nnon-parsed body\n$}, 'exactly what the program wrote');
unlike($r->{raw}, qr/^Server:/m, 'no headers from nginx');


=== TEST 8: stderr goes to the error log line by line, tagged with the script, never into the response
--- config
root $TEST_NGINX_SERVROOT;
location /cgi-bin/ {
    rust_cgi;
}
--- request
GET /cgi-bin/stderr.sh
--- response_body
some output
--- wait: 0.3
--- error_log eval
[
  qr{\[error\] .*rust_cgi: ".*/cgi-bin/stderr.sh": stderr: first line, client: 127.0.0.1},
  qr{\[error\] .*rust_cgi: ".*/cgi-bin/stderr.sh": stderr: second line},
  qr{rust_cgi: ".*/cgi-bin/stderr.sh": stderr: after the output, no newline},
]


=== TEST 9: rust_cgi_stderr_level
--- config
root $TEST_NGINX_SERVROOT;
location /cgi-bin/ {
    rust_cgi;
    rust_cgi_stderr_level warn;
}
--- request
GET /cgi-bin/stderr.sh
--- wait: 0.3
--- error_log eval
qr{\[warn\] .*rust_cgi: ".*/cgi-bin/stderr.sh": stderr: first line}


=== TEST 10: broken programs answer 502 and the log says which way they broke
--- config
root $TEST_NGINX_SERVROOT;
location /cgi-bin/ {
    rust_cgi;
    rust_cgi_header_limit 8k;
}
--- perl
is(http_get('/cgi-bin/no-header.sh')->{status}, 502, 'exits before its header: 502');
is(http_get('/cgi-bin/garbage.sh')->{status}, 502, 'garbage header: 502');
is(http_get('/cgi-bin/huge-header.sh')->{status}, 502, 'header over the limit: 502');
--- wait: 0.3
--- error_log eval
[
  qr{rust_cgi: ".*/no-header.sh" closed its output before sending a complete header( \(exit code 3\))?},
  qr{rust_cgi: ".*/garbage.sh" sent a malformed header line "this is not a header"},
  qr{rust_cgi: ".*/huge-header.sh" sent more than 8192 bytes of headers \(rust_cgi_header_limit\)},
]


=== TEST 11: a timeout answers 504 and kills the program's whole process group, grandchild included
--- config
root $TEST_NGINX_SERVROOT;
location /cgi-bin/ {
    rust_cgi;
    rust_cgi_timeout 500ms;
    rust_cgi_kill_grace 500ms;
    rust_cgi_param PIDFILE $TEST_NGINX_SERVROOT/tmp/hang.pids;
}
--- perl
use Time::HiRes qw(sleep time);
# hang.sh never answers: a 504 can only be the timeout.
my $r = http_get('/cgi-bin/hang.sh');
is($r->{status}, 504, 'answered 504, at the timeout');
my @pids = main::read_pids(servroot() . '/tmp/hang.pids');
is(scalar @pids, 2, 'the program and its grandchild had started');
ok(wait_for(sub { !(grep { main::alive($_) } @pids) }, 30), 'no process of the group remains');
--- error_log
rust_cgi: the app sent nothing for 500 ms; answering 504 (raise rust_cgi_timeout if it is meant to be slow)


=== TEST 12: a total time limit cuts off a program that keeps talking
--- config
root $TEST_NGINX_SERVROOT;
location /cgi-bin/ {
    rust_cgi;
    rust_cgi_timeout 5s 700ms;
    rust_cgi_kill_grace 300ms;
    rust_cgi_param PIDFILE $TEST_NGINX_SERVROOT/tmp/stream.pid;
}
--- perl
use Time::HiRes qw(sleep time);
# stream.sh never ends: a response that ends is the total limit's.
my $r = http_get('/cgi-bin/stream.sh');
like($r->{body}, qr/^line 0\n/, 'some lines came first');
ok(!$r->{chunked_complete}, 'and the response is cut off, marked incomplete');
my ($pid) = main::read_pids(servroot() . '/tmp/stream.pid');
ok(wait_for(sub { !main::alive($pid) }, 30), 'the program is gone');
--- error_log
the app did not finish within its total time of 700 ms


=== TEST 13: a client that goes away gets the program killed
--- config
root $TEST_NGINX_SERVROOT;
location /cgi-bin/ {
    rust_cgi;
    rust_cgi_kill_grace 300ms;
    rust_cgi_param PIDFILE $TEST_NGINX_SERVROOT/tmp/stream.pid;
}
--- perl
use Time::HiRes qw(sleep time);
my $s = http_start("GET /cgi-bin/stream.sh HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
sysread($s, my $buf, 200);
like($buf, qr{^HTTP/1.1 200}, 'it was streaming');
my ($pid) = main::read_pids(servroot() . '/tmp/stream.pid');
ok(main::alive($pid), 'the program runs');
close $s;
ok(wait_for(sub { !main::alive($pid) }, 30), 'and is killed once the client left');


=== TEST 14: 1,000 requests in a row leave no zombie and no descriptor behind in the worker
--- config
root $TEST_NGINX_SERVROOT;
location /cgi-bin/ {
    rust_cgi;
}
--- timeout: 120
--- perl
use Time::HiRes qw(sleep);
http_get('/cgi-bin/hello.sh');
my ($worker) = worker_pids();
my $fds = sub { my @f = glob "/proc/$worker/fd/*"; scalar @f };
# Counted once the first program's pipes and pidfd are closed too.
sleep 0.5;
my $before = $fds->();
my $ok = 0;
for (1 .. 1000) {
    $ok++ if http_get('/cgi-bin/hello.sh')->{body} eq "hello from /cgi-bin/hello.sh\n";
}
is($ok, 1000, 'all 1,000 answered');
sleep 0.5;
is($fds->(), $before, 'the worker has as many descriptors as before');
my @zombies = grep {
    my $s = do { local (@ARGV, $/) = $_; <> } // '';
    $s =~ /^\d+ \(.*\) Z (\d+)/ && $1 == $worker
} glob '/proc/[0-9]*/stat';
is(scalar @zombies, 0, 'no zombies');


=== TEST 15: the program sees only fds 0-2, default signal state, its own process group
--- config
root $TEST_NGINX_SERVROOT;
location /cgi-bin/ {
    rust_cgi;
}
--- perl
is(http_get('/cgi-bin/fds.py')->{body}, "0 1 2\n", 'fds 0, 1 and 2 only');
my $r = http_get('/cgi-bin/fds.sh');
like($r->{body}, qr/^SigBlk:\s+0+$/m, 'no blocked signals');
like($r->{body}, qr/^SigIgn:\s+0+$/m, 'no ignored signals (nginx ignores SIGPIPE)');
my ($ppid) = $r->{body} =~ /^PPid:\s+(\d+)/m;
my ($worker) = worker_pids();
is($ppid, $worker, 'a child of the nginx worker');
my ($pgid, $pid) = $r->{body} =~ /^pgid (\d+) pid (\d+)/m;
is($pgid, $pid, 'leading its own process group');


=== TEST 16: refusals: missing 404, not executable 403, a directory 403, symlinks out of the root 403
--- setup
symlink '/bin/sh', servroot() . '/cgi-bin/escape' or die $!;
--- config
root $TEST_NGINX_SERVROOT;
location / {
    return 404;
}
location /cgi-bin/ {
    rust_cgi;
}
--- perl
is(http_get('/cgi-bin/missing.sh')->{status}, 404, 'missing');
is(http_get('/cgi-bin/not-executable.sh')->{status}, 403, 'not executable');
is(http_get('/cgi-bin/sub/')->{status}, 403, 'a directory');
is(http_get('/cgi-bin/escape')->{status}, 403, 'a symlink out of the script root');
for my $uri ('/cgi-bin/../cgi-bin/hello.sh', '/cgi-bin/%2e%2e/tmp', '/cgi-bin/..%2f..%2fetc/passwd', '/cgi-bin/sub/../../conf/nginx.conf') {
    my $r = http_get($uri);
    ok($r->{status} =~ /^(200|400|403|404)$/ && $r->{body} !~ /worker_processes|root:/, "$uri: $r->{status}, nothing outside");
}
--- error_log eval
[
  qr{rust_cgi: ".*/cgi-bin/not-executable.sh" is not executable},
  qr{rust_cgi: ".*/cgi-bin/escape" is a symlink to "/.*", outside the script directory},
]


=== TEST 17: interpreters by extension; scripts in subdirectories
--- config
root $TEST_NGINX_SERVROOT;
location /cgi-bin/ {
    rust_cgi;
    rust_cgi_interpreter .py /usr/bin/python3;
}
--- perl
my $r = http_get('/cgi-bin/interpreted.py/some/info');
is($r->{body}, "interpreted, PATH_INFO=/some/info\n", 'a non-executable .py runs under python3');
$r = http_get('/cgi-bin/sub/deep.sh/x');
like($r->{body}, qr{^deep: SCRIPT_NAME=/cgi-bin/sub/deep.sh PATH_INFO=/x cwd=.*/cgi-bin/sub$}m, 'subdirectory script');


=== TEST 18: rust_cgi_pass with variables from a regex location; empty, dropped and if_not_empty params
--- config
location ~ ^/tool(/.*)?$ {
    rust_cgi_pass $TEST_NGINX_SERVROOT/cgi-bin/env.py;
    rust_cgi_param PATH_INFO $1;
    rust_cgi_param EMPTY_ONE "";
    rust_cgi_param MAYBE $arg_maybe if_not_empty;
    rust_cgi_param_drop SERVER_SOFTWARE REMOTE_HOST;
}
--- perl
my $env = main::env_of(http_get('/tool/a/b?x=1')->{body});
is($env->{PATH_INFO}, '/a/b', 'PATH_INFO from the regex capture');
is($env->{SCRIPT_NAME}, '', 'SCRIPT_NAME empty for a regex location');
ok(exists $env->{EMPTY_ONE} && $env->{EMPTY_ONE} eq '', 'an empty param is passed empty');
ok(!exists $env->{MAYBE}, 'if_not_empty drops an empty value');
ok(!exists $env->{SERVER_SOFTWARE} && !exists $env->{REMOTE_HOST}, 'dropped variables');
$env = main::env_of(http_get('/tool/c?maybe=yes')->{body});
is($env->{MAYBE}, 'yes', 'if_not_empty keeps a value');


=== TEST 19: rust_cgi_pass_env lets chosen variables of nginx's environment through
--- main_config
env SECRET_FROM_NGINX=hidden;
env ALLOWED_FROM_NGINX=visible;
--- http_config
rust_cgi_pass_env PATH ALLOWED_FROM_NGINX;
--- config
root $TEST_NGINX_SERVROOT;
location /cgi-bin/ {
    rust_cgi;
}
--- perl
my $env = main::env_of(http_get('/cgi-bin/env.py')->{body});
is($env->{ALLOWED_FROM_NGINX}, 'visible', 'allowed');
ok(!exists $env->{SECRET_FROM_NGINX}, 'not allowed');


=== TEST 20: an authenticated user becomes REMOTE_USER and AUTH_TYPE
--- config
root $TEST_NGINX_SERVROOT;
location /cgi-bin/ {
    rust_cgi;
    auth_basic "test";
    auth_basic_user_file $TEST_NGINX_SERVROOT/html/htpasswd;
}
--- user_files
>>> htpasswd
alice:{PLAIN}secret
--- perl
my $env = main::env_of(http_get('/cgi-bin/env.py', headers => 'Authorization: Basic YWxpY2U6c2VjcmV0')->{body});
is($env->{REMOTE_USER}, 'alice', 'REMOTE_USER');
is($env->{AUTH_TYPE}, 'Basic', 'AUTH_TYPE');
ok(!exists $env->{HTTP_AUTHORIZATION}, 'the credentials themselves stay withheld');
is(http_get('/cgi-bin/env.py')->{status}, 401, 'no credentials, no program');


=== TEST 21: configuration errors fail nginx -t
--- config
location /a {
    rust_cgi_pass /nonexistent/program;
}
--- must_die
--- error_log eval
qr{"rust_cgi_pass": "/nonexistent/program" does not exist in .*nginx.conf:\d+}


=== TEST 22: rust_cgi and rust_wsgi cannot share a location
--- config
location /a {
    rust_wsgi $TEST_NGINX_APPS/hello.py;
    rust_cgi;
}
--- must_die
--- error_log eval
qr{"rust_cgi" and "rust_wsgi" cannot serve the same location in .*nginx.conf:\d+}


=== TEST 23: while a CGI program works, nginx keeps serving
--- config
root $TEST_NGINX_SERVROOT;
location /cgi-bin/ {
    rust_cgi;
    rust_cgi_param PIDFILE $TEST_NGINX_SERVROOT/tmp/hang.pids;
    rust_cgi_timeout 120s;
}
location = /static {
    return 200 "static\n";
}
--- perl
use IO::Select;
my $slow = http_start("GET /cgi-bin/hang.sh HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
ok(wait_for(sub { main::read_pids(servroot() . '/tmp/hang.pids') }, 30), 'the hanging program runs');
is(http_get('/static')->{body}, "static\n", 'static answer');
is(http_get('/cgi-bin/hello.sh')->{body}, "hello from /cgi-bin/hello.sh\n", 'another CGI answer');
ok(!IO::Select->new($slow)->can_read(0), 'both while the hanging one has not answered');
close $slow;


=== TEST 24: over HTTP/2 an nph- program's status line and headers are parsed, since raw HTTP/1 bytes cannot pass, also when the status line comes alone
--- min_nginx: 1.25.1
--- config
http2 on;
root $TEST_NGINX_SERVROOT;
location /cgi-bin/ {
    rust_cgi;
}
--- perl
plan skip_all => 'curl is not installed' unless grep { -x "$_/curl" } split /:/, $ENV{PATH};
my $out = `curl -s -i --http2-prior-knowledge http://127.0.0.1:@{[server_port()]}/cgi-bin/nph-raw.sh`;
like($out, qr{^HTTP/2 299}, 'the program\'s status');
like($out, qr{^x-nph: yes}mi, 'its header');
like($out, qr{\r\n\r\nnon-parsed body\n$}, 'its body');
# The status line alone first, the headers a second later (in another read).
$out = `curl -s -i --http2-prior-knowledge http://127.0.0.1:@{[server_port()]}/cgi-bin/nph-split.sh`;
like($out, qr{^HTTP/2 298}, 'a status line that came alone');
like($out, qr{^x-nph: split}mi, 'and the headers after it');
like($out, qr{\r\n\r\nsplit body\n$}, 'and the body');


=== TEST 25: a program writing tiny lines to a client that stops reading: memory stays bounded by bytes
--- config
root $TEST_NGINX_SERVROOT;
location /cgi-bin/ {
    rust_cgi;
    rust_cgi_kill_grace 300ms;
}
--- perl
use Time::HiRes qw(sleep);
http_get('/cgi-bin/hello.sh');
my ($worker) = worker_pids();
my $hwm = sub { my $s = do { local (@ARGV, $/) = "/proc/$worker/status"; <> }; $s =~ /VmHWM:\s+(\d+)/ ? $1 : 0 };
my $before = $hwm->();
my $s = http_start("GET /cgi-bin/chatty.sh HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
sysread($s, my $buf, 1024);
like($buf, qr{^HTTP/1.1 200}, 'streaming');
sleep 3;    # the program keeps writing; the client reads nothing
my $growth = ($hwm->() - $before) / 1024;
cmp_ok($growth, '<', 32, sprintf('peak RSS grew %.1f MiB', $growth));
close $s;


=== TEST 26: a program that closes its stdout and keeps working: its response ends at once, whole, while it runs on
--- config
root $TEST_NGINX_SERVROOT;
location /cgi-bin/ {
    rust_cgi;
    # Longer than the test: the program is still running when its
    # response has ended, until nginx's exit stops it.
    rust_cgi_kill_grace 1h;
    rust_cgi_param PIDFILE $TEST_NGINX_SERVROOT/tmp/close-stdout.pid;
}
--- perl
# The timeout only guards against a hang: the program sleeps 1000 s.
my $r = http_get('/cgi-bin/close-stdout.sh', timeout => 30);
is($r->{status}, 200, 'status');
is($r->{body}, "all of it\n", 'the whole body');
ok($r->{chunked_complete}, 'ended, not cut off');
my ($pid) = main::read_pids(servroot() . '/tmp/close-stdout.pid');
ok(main::alive($pid), 'while the program still runs');
kill 'QUIT', nginx_pid();
ok(nginx_wait_exit(20), 'nginx stops');
ok(wait_for(sub { !main::group_of($pid) }, 10), 'and nothing of the program\'s group outlives it');


=== TEST 27: a program that exits leaving a child behind: the grace stops the child (TERM, KILL if it ignores TERM); on the program's stdout it holds the response open until then, else not
--- config
root $TEST_NGINX_SERVROOT;
rust_cgi_param PIDFILE $TEST_NGINX_SERVROOT/tmp/background-$arg_n.pids;
location /cgi-bin/ {
    rust_cgi;
    rust_cgi_kill_grace 300ms;
}
--- perl
for my $how ('keep', 'keep+ignore', 'null', 'null+ignore', 'detached', 'detached+ignore') {
    my ($r, $whole, $leader, $child) = main::leave_behind("/cgi-bin/background.sh?$how", 1);
    ok($whole, "$how: the whole response, ended, not cut off");
    ok($child, "$how: the child had started");
    ok(wait_for(sub { !main::group_of($leader) }, 10), "$how: nothing of the group remains");
}
--- error_log eval
[
  qr{\[info\] .*rust_cgi: ".*/background.sh" exited, but its process group still runs; sending SIGTERM \(rust_cgi_kill_grace 300 ms\)},
  qr{\[warn\] .*rust_cgi: ".*/background.sh" exited, but its process group ignored SIGTERM; sending SIGKILL \(rust_cgi_kill_grace 300 ms\)},
]


=== TEST 28: after the program exited, a timeout, a client that leaves or nginx's exit still stops its group
--- config
root $TEST_NGINX_SERVROOT;
# Longer than the test: only the timeout, the client or nginx's exit stop
# the children.
rust_cgi_kill_grace 1h;
rust_cgi_param PIDFILE $TEST_NGINX_SERVROOT/tmp/background-$arg_n.pids;
location /cgi-bin/ {
    rust_cgi;
    rust_cgi_timeout 500ms;
}
location /linger/ {
    alias $TEST_NGINX_SERVROOT/cgi-bin/;
    rust_cgi;
}
--- perl
my ($r, $whole, $leader, $child) = main::leave_behind('/cgi-bin/background.sh?keep', 1);
is($r->{body}, "left a child behind\n", 'the program answered');
ok(!$r->{chunked_complete}, 'and the timeout cut the response off');
ok(wait_for(sub { !main::group_of($leader) }, 10), 'the child is stopped with it');

my $s = http_start("GET /linger/background.sh?keep&n=2 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
my $got = '';
while ($got !~ /left a child behind/) {
    my $n = sysread($s, my $buf, 4096) or last;
    $got .= $buf;
}
like($got, qr/left a child behind/, 'the program answered');
($leader, $child) = main::read_pids(servroot() . '/tmp/background-2.pids');
ok(wait_for(sub { !main::alive($leader) }, 10), 'and exited');
ok(main::alive($child), 'its child still runs');
close $s;
ok(wait_for(sub { !main::group_of($leader) }, 10), 'and is stopped once the client left');

my @groups;
for my $how ('null', 'detached') {
    ($r, $whole, $leader, $child) = main::leave_behind("/linger/background.sh?$how", $how);
    ok($whole, "$how: the response ends with the program");
    ok(main::alive($child), "$how: while its child still runs");
    push @groups, $leader;
}
kill 'QUIT', nginx_pid();
ok(nginx_wait_exit(20), 'nginx stops');
ok(wait_for(sub { !grep { main::group_of($_) } @groups }, 10), 'and nothing of the groups outlives it');
--- error_log
rust_cgi: the app sent nothing for 500 ms


=== TEST 29: a program that cannot be executed (its interpreter is missing) answers 500 and is reaped all the same
--- config
root $TEST_NGINX_SERVROOT;
location /cgi-bin/ {
    rust_cgi;
}
--- perl
is(http_get('/cgi-bin/bad-interpreter.sh')->{status}, 500, '500');
my ($worker) = worker_pids();
my $children = sub {
    grep { my $s = do { local (@ARGV, $/) = $_; <> } // ''; $s =~ /^\d+ \(.*\) \S (\d+)/ && $1 == $worker } glob '/proc/[0-9]*/stat';
};
ok(wait_for(sub { !$children->() }, 10), 'the worker has no child left, not even a zombie');
--- error_log eval
qr{rust_cgi: cannot run ".*/bad-interpreter.sh": exec: No such file or directory}
