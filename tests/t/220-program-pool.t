# rust_pool program=: pools of FastCGI programs (php-cgi, fcgiwrap, a Perl
# FCGI program) that the module starts and supervises, reached with
# rust_fastcgi_pass and rust_fastcgi_param as nginx reaches a FastCGI
# server with fastcgi_pass and fastcgi_param.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::Gateway;
use JSON::PP;

sub alive { my @pids = @_; return grep { kill 0, $_ } @pids }

# The pool's processes that run $program.
sub programs {
    my ($program) = @_;
    return grep { (readlink("/proc/$_/exe") // '') =~ /\Q$program\E/ } pool_pids();
}

sub status { return decode_json(http_get('/status')->{body}) }

sub pool_status {
    my ($name) = @_;
    my ($pool) = grep { $_->{name} eq $name } @{ status()->{pools} };
    return $pool;
}

run_tests();

__DATA__

=== TEST 1: php-cgi serves PHP with the params file, as behind fastcgi_pass
--- user_files
>>> www/env.php
<?php
header('Content-Type: application/json');
$keys = ['SCRIPT_NAME', 'SCRIPT_FILENAME', 'PATH_INFO', 'QUERY_STRING', 'REQUEST_METHOD', 'REQUEST_URI', 'DOCUMENT_URI',
         'DOCUMENT_ROOT', 'SERVER_SOFTWARE', 'GATEWAY_INTERFACE', 'REDIRECT_STATUS', 'HTTP_X_TRACE', 'HTTP_COOKIE',
         'HTTPS', 'SERVER_PORT', 'REMOTE_ADDR', 'CONTENT_TYPE', 'CONTENT_LENGTH'];
$out = [];
foreach ($keys as $k) { $out[$k] = $_SERVER[$k] ?? null; }
$out['pid'] = getmypid();
$out['get'] = $_GET;
echo json_encode($out);
>>> www/index.php
<?php echo "index.php for ", $_SERVER['REQUEST_URI'], "\n";
>>> www/static.txt
static file
--- http_config
rust_pool php program=/usr/bin/php-cgi processes=2 env=PHP_FCGI_MAX_REQUESTS=0;
--- config
root $TEST_NGINX_HTML_DIR/www;
index index.php;
location / {
    try_files $uri $uri/ /index.php$is_args$args;
}
location ~ [^/]\.php(/|$) {
    fastcgi_split_path_info ^(.+?\.php)(/.*)$;
    try_files $fastcgi_script_name =404;
    include rust_fastcgi.conf;
    rust_fastcgi_param PATH_INFO $fastcgi_path_info;
    rust_fastcgi_pass php;
}
location = /status { rust_pool_status; }
--- perl
my $r = http_request(build_request("GET /env.php/extra/path?a=1&b=%C3%A9", "X-Trace: 1\nX-Trace: 2\nCookie: a=1\nCookie: b=2"));
is($r->{status}, 200, 'a PHP script answers');
my $env = decode_json($r->{body});
my $root = servroot() . '/html/www';
is($env->{SCRIPT_NAME}, '/env.php', 'SCRIPT_NAME from fastcgi_split_path_info');
is($env->{PATH_INFO}, '/extra/path', 'PATH_INFO too');
is($env->{SCRIPT_FILENAME}, "$root/env.php", 'SCRIPT_FILENAME from rust_fastcgi.conf');
is($env->{DOCUMENT_ROOT}, $root, 'DOCUMENT_ROOT');
is($env->{QUERY_STRING}, 'a=1&b=%C3%A9', 'QUERY_STRING');
is_deeply($env->{get}, { a => '1', b => "\x{e9}" }, 'PHP parsed the query');
is($env->{REQUEST_URI}, '/env.php/extra/path?a=1&b=%C3%A9', 'REQUEST_URI');
is($env->{REQUEST_METHOD}, 'GET', 'REQUEST_METHOD');
like($env->{SERVER_SOFTWARE}, qr{^nginx/\d}, 'SERVER_SOFTWARE has nginx\'s version');
is($env->{REDIRECT_STATUS}, '200', 'REDIRECT_STATUS for php-cgi');
is($env->{HTTP_X_TRACE}, '1, 2', 'request headers arrive as HTTP_*, repeats joined');
is($env->{HTTP_COOKIE}, 'a=1; b=2', 'cookies joined with ;');
is($env->{HTTPS}, undef, 'HTTPS is left out when empty (if_not_empty)');
is($env->{SERVER_PORT}, server_port(), 'SERVER_PORT');

$r = http_get('/no/such/page?x=1');
is($r->{status}, 200, 'an unknown path falls back to index.php (try_files)');
is($r->{body}, "index.php for /no/such/page?x=1\n", 'which sees the original URI');
is(http_get('/')->{body}, "index.php for /\n", 'the directory index is index.php');
is(http_get('/missing.php')->{status}, 404, 'a missing script is a 404 from nginx (try_files)');
is(http_get('/static.txt')->{body}, "static file\n", 'static files are nginx\'s');

my @php;
ok(wait_for(sub { @php = main::programs('php-cgi'); @php == 2 }, 30), 'two php-cgi processes, children of the supervisor');
for my $pid (@php) {
    like(readlink("/proc/$pid/fd/0") // '', qr/^socket:/, "php-cgi $pid has its listening socket on fd 0");
    # php-cgi opens its own (a Zend semaphore file): none is a socket or
    # pipe of nginx's.
    my @more = grep { !m{/(0|1|2)$} } glob "/proc/$pid/fd/*";
    is_deeply([grep { (readlink($_) // '') =~ /^(socket|pipe|anon_inode):/ } @more], [], "and no other socket or pipe (nginx's are closed)");
    my $environ = do { local $/; open my $fh, '<', "/proc/$pid/environ" or die; <$fh> };
    my %vars = map { split /=/, $_, 2 } split /\0/, $environ;
    is($vars{PHP_FCGI_MAX_REQUESTS}, '0', 'its env= is in its environment');
    ok(exists $vars{FCGI_WEB_SERVER_ADDRS}, 'and FCGI_WEB_SERVER_ADDRS');
    my ($uid) = (slurp_status($pid) =~ /^Uid:\s+(\d+)/m);
    is($uid, (getpwnam('nobody'))[2], 'it runs as nginx\'s worker user') if $> == 0;
}
my ($sup) = supervisor_pids();
my @dirs = glob "/tmp/ngx-rust-gateway.$sup.*";
is(scalar @dirs, 1, 'the sockets\' directory has a name nobody could guess beforehand');
my $dir = $dirs[0];
my @sockets = glob "$dir/*";
is(scalar @sockets, 2, 'one socket file per process');
my $group = (getpwnam('nobody'))[3];
if ($> == 0) {
    my @st = lstat $dir;
    is($st[2] & 07777, 0710, 'the directory: only its owner may write in it, nginx\'s workers\' group may enter');
    is("$st[4]:$st[5]", "0:$group", 'and the owner is root (a program running as the workers\' user cannot put anything there)');
    for (@sockets) {
        my @s = lstat $_;
        is($s[2] & 0777, 0660, "$_ is for root and the workers' group");
        is("$s[4]:$s[5]", "0:$group", 'whose group it is');
    }
} else {
    is((lstat $dir)[2] & 07777, 0700, 'the directory is private');
}

my $pool = main::pool_status('php');
is($pool->{threads}, undef, 'the status has no Python threads for a program pool');
is_deeply([map { $_->{capacity} } @{ $pool->{processes} }], [1, 1], 'php-cgi said it takes one request at a time');

sub slurp_status { my ($pid) = @_; local $/; open my $fh, '<', "/proc/$pid/status" or return ''; return <$fh> }
--- no_error_log
[error]


=== TEST 2: rust_fastcgi_param is inherited like fastcgi_param: by levels that set none
--- user_files
>>> www/p.php
<?php header('Content-Type: application/json'); echo json_encode(['from_server' => $_SERVER['FROM_SERVER'] ?? null,
    'own' => $_SERVER['OWN'] ?? null, 'empty' => array_key_exists('MAYBE', $_SERVER), 'rust_param' => $_SERVER['FROM_RUST_PARAM'] ?? null,
    'override' => $_SERVER['HTTP_X_OVERRIDE'] ?? null]);
--- http_config
rust_pool php program=/usr/bin/php-cgi processes=1;
--- config
root $TEST_NGINX_HTML_DIR/www;
rust_fastcgi_param SCRIPT_FILENAME $document_root/p.php;
rust_fastcgi_param FROM_SERVER yes;
location /inherits {
    rust_fastcgi_pass php;
}
location /own {
    rust_fastcgi_param SCRIPT_FILENAME $document_root/p.php;
    rust_fastcgi_param OWN mine;
    rust_fastcgi_param MAYBE $arg_maybe if_not_empty;
    rust_fastcgi_param HTTP_X_OVERRIDE from-config;
    rust_param FROM_RUST_PARAM also;
    rust_fastcgi_pass php;
}
--- perl
my $r = decode_json(http_get('/inherits')->{body});
is($r->{from_server}, 'yes', 'a location without rust_fastcgi_param inherits the server\'s');
$r = decode_json(http_get('/own')->{body});
is($r->{from_server}, undef, 'a location with its own does not');
is($r->{own}, 'mine', 'its own arrive');
ok(!$r->{empty}, 'an empty if_not_empty param is left out');
is($r->{rust_param}, 'also', 'rust_param arrives too');
$r = decode_json(http_get('/own?maybe=1')->{body});
ok($r->{empty}, 'and sent when it has a value');
$r = decode_json(http_request(build_request('GET /own', 'X-Override: from-client'))->{body});
is($r->{override}, 'from-config', 'a param named like a header replaces the header (as fastcgi_param does)');
--- no_error_log
[error]


=== TEST 3: real PHP: forms, uploads, sessions and cookies, redirects, errors on stderr
--- user_files
>>> www/form.php
<?php
header('Content-Type: application/json');
$files = [];
foreach ($_FILES as $name => $f) {
    $files[$name] = ['name' => $f['name'], 'size' => $f['size'], 'error' => $f['error'],
                     'sha256' => $f['error'] ? null : hash_file('sha256', $f['tmp_name'])];
}
echo json_encode(['method' => $_SERVER['REQUEST_METHOD'], 'post' => $_POST, 'files' => $files,
                  'raw_length' => strlen(file_get_contents('php://input'))]);
>>> www/session.php
<?php
session_start();
$_SESSION['n'] = ($_SESSION['n'] ?? 0) + 1;
setcookie('seen', 'yes', ['path' => '/', 'httponly' => true]);
echo "visit ", $_SESSION['n'], " seen=", $_COOKIE['seen'] ?? 'no', "\n";
>>> www/redirect.php
<?php
if (isset($_GET['permanent'])) { header('Location: /elsewhere', true, 301); exit; }
header('Location: /login.php?next=%2Fredirect.php');
>>> www/warn.php
<?php error_log("something odd in warn.php"); echo "done\n";
>>> www/status.php
<?php http_response_code(418); header('X-Extra: 1'); echo "teapot\n";
--- http_config
rust_pool php program=/usr/bin/php-cgi processes=2 arg=-d arg=session.save_path=$TEST_NGINX_SERVROOT/tmp env=PHP_FCGI_MAX_REQUESTS=0;
client_max_body_size 20m;
--- config
root $TEST_NGINX_HTML_DIR/www;
location ~ \.php$ {
    include rust_fastcgi.conf;
    rust_fastcgi_pass php;
}
--- perl
use Digest::SHA qw(sha256_hex);
my $r = http_request(build_request("POST /form.php\nname=Ada+Lovelace&lang%5B%5D=en&lang%5B%5D=fr",
    "Content-Type: application/x-www-form-urlencoded"));
is($r->{status}, 200, 'a form is posted');
my $got = decode_json($r->{body});
is_deeply($got->{post}, { name => 'Ada Lovelace', lang => ['en', 'fr'] }, 'PHP parsed it');

my $data = join '', map { chr(($_ * 13) % 256) } 1 .. 1_000_000;
my $body = multipart('XyZ', title => 'report', upload => { filename => 'data.bin', data => $data });
$r = http_request(build_request("POST /form.php\n$body",
    "Content-Type: multipart/form-data; boundary=XyZ"));
is($r->{status}, 200, 'a 1 MB upload is posted');
$got = decode_json($r->{body});
is($got->{post}{title}, 'report', 'with its form field');
is($got->{files}{upload}{error}, 0, 'the file arrived');
is($got->{files}{upload}{size}, 1_000_000, 'whole');
is($got->{files}{upload}{sha256}, sha256_hex($data), 'and intact');

$r = http_get('/session.php');
is($r->{body}, "visit 1 seen=no\n", 'a session starts');
my @cookies = @{ $r->{headers}{'set-cookie'} // [] };
is(scalar @cookies, 2, 'with two cookies (the session and ours)');
my $jar = join '; ', map { (split /;/)[0] } @cookies;
like($jar, qr/PHPSESSID=\w+/, 'one is the session id');
$r = http_request(build_request('GET /session.php', "Cookie: $jar"));
is($r->{body}, "visit 2 seen=yes\n", 'the next request continues the session and sends the cookie back');
$r = http_request(build_request('GET /session.php', "Cookie: $jar"));
is($r->{body}, "visit 3 seen=yes\n", 'whichever process serves it');

$r = http_get('/redirect.php');
is($r->{status}, 302, 'header("Location") redirects with 302');
is($r->{headers}{location}[0], '/login.php?next=%2Fredirect.php', 'to where PHP said');
$r = http_get('/redirect.php?permanent=1');
is($r->{status}, 301, 'a 301 stays a 301');

$r = http_get('/status.php');
is($r->{status}, 418, 'http_response_code() sets the status');
is($r->{headers}{'x-extra'}[0], '1', 'with the script\'s headers');

is(http_get('/warn.php')->{body}, "done\n", 'a script that logs answers');
like(error_log_text(), qr/\[error\].*rust_fastcgi_pass "php" sent in stderr: .*something odd in warn\.php/,
    'and what it wrote to stderr is in nginx\'s error log, with the request');
--- error_log
something odd in warn.php


=== TEST 4: fcgiwrap runs CGI scripts in a pool; a Perl FCGI program serves, and its crash is a 502 that names the signal
--- user_files
>>> cgi/hello.sh
#!/bin/sh
printf 'Content-Type: text/plain\r\n\r\n'
echo "hello from $SCRIPT_NAME via fcgiwrap, query=$QUERY_STRING"
>>> cgi/moved.sh
#!/bin/sh
printf 'Location: /cgi/hello.sh\r\n\r\n'
>>> app.pl
use strict;
use FCGI;
my $request = FCGI::Request();
while ($request->Accept() >= 0) {
    kill 'KILL', $$ if $ENV{REQUEST_URI} =~ /crash/;
    my $body = '';
    read(STDIN, $body, $ENV{CONTENT_LENGTH}) if $ENV{CONTENT_LENGTH};
    print "Content-Type: text/plain\r\n\r\n";
    print "perl pid=$$ method=$ENV{REQUEST_METHOD} uri=$ENV{REQUEST_URI} body=$body\n";
}
--- setup
chmod 0755, glob(servroot() . '/html/cgi/*');
--- http_config
rust_pool cgi program=/usr/sbin/fcgiwrap processes=1;
rust_pool perl program=/usr/bin/perl arg=$TEST_NGINX_HTML_DIR/app.pl processes=1;
--- config
location /cgi/ {
    root $TEST_NGINX_HTML_DIR;
    include rust_fastcgi.conf;
    rust_fastcgi_pass cgi;
}
location /perl/ {
    include rust_fastcgi_params;
    rust_fastcgi_pass perl;
}
location = /status { rust_pool_status; }
--- perl
my $r = http_get('/cgi/hello.sh?x=1');
is($r->{status}, 200, 'fcgiwrap runs a CGI script');
is($r->{body}, "hello from /cgi/hello.sh via fcgiwrap, query=x=1\n", 'with the CGI variables');
$r = http_get('/cgi/moved.sh');
is($r->{status}, 302, 'a Location without a Status is a 302, as behind fastcgi_pass');
is($r->{headers}{location}[0], '/cgi/hello.sh', 'to that place');

$r = http_request(build_request("POST /perl/echo\nsome body"));
is($r->{status}, 200, 'a Perl FCGI program serves');
like($r->{body}, qr{^perl pid=(\d+) method=POST uri=/perl/echo body=some body$}, 'with the request and its body');
my ($perl) = $r->{body} =~ /pid=(\d+)/;
my $pool = main::pool_status('perl');
is($pool->{processes}[0]{capacity}, 1, 'it takes one request at a time (no answer to FCGI_GET_VALUES: libfcgi answers within requests only)');

$r = http_get('/perl/crash');
is($r->{status}, 502, 'a program that dies mid-request is a 502');
like(error_log_text(), qr/rust_pool "perl": process $perl closed the connection before its response: it was killed by signal 9/,
    'the log names the process and how it died');
ok(wait_for(sub { my $r = http_get('/perl/again'); $r->{status} == 200 && $r->{body} !~ /pid=$perl /; }, 30),
    'another process serves next');
--- error_log
was killed by signal 9


=== TEST 5: a process gets one request at a time: the next waits in line, and the status answers meanwhile
--- http_config
rust_pool one program=/usr/bin/php-cgi processes=1 env=PHP_FCGI_MAX_REQUESTS=0;
--- config
root $TEST_NGINX_APPS/php;
location ~ \.php$ {
    include rust_fastcgi.conf;
    rust_fastcgi_pass one;
}
location = /status { rust_pool_status; }
--- perl
my $gate = servroot() . '/tmp/gate-open';
my $held = http_start(build_request("GET /gate.php?f=$gate"));
ok(wait_for(sub { main::pool_status('one')->{processes}[0]{active} == 1 }, 30), 'the only process is busy');
my $queued = http_start(build_request('GET /quick.php'));
my $pool;
ok(wait_for(sub { $pool = main::pool_status('one'); $pool->{waiting} == 1 }, 30),
    'the next request waits in line instead of going to the busy process');
is($pool->{processes}[0]{active}, 1, 'which still has one request');
like($pool->{processes}[0]{current_request}, qr{^/gate\.php}, 'the status names it');
open my $fh, '>', $gate or die; close $fh;
my $first = http_finish($held);
my $second = http_finish($queued);
is($first->{status}, 200, 'the held request finishes');
like($second->{body}, qr/^quick \d+$/, 'then the waiting one is served');
is(main::pool_status('one')->{waiting}, 0, 'nothing waits any more');
--- no_error_log
[error]


=== TEST 6: with two processes, a request goes to the free one while the other is busy
--- http_config
rust_pool two program=/usr/bin/php-cgi processes=2 env=PHP_FCGI_MAX_REQUESTS=0;
--- config
root $TEST_NGINX_APPS/php;
location ~ \.php$ {
    include rust_fastcgi.conf;
    rust_fastcgi_pass two;
}
location = /status { rust_pool_status; }
--- perl
ok(wait_for(sub { main::pool_status('two')->{running} == 2 }, 30), 'both processes are ready');
my $gate = servroot() . '/tmp/gate-open';
my $held = http_start(build_request("GET /gate.php?f=$gate"));
ok(wait_for(sub { grep { $_->{active} == 1 } @{ main::pool_status('two')->{processes} } }, 30), 'one process is busy');
# Served while the other is held: this cannot finish if it went there.
my @quick = map { http_get('/quick.php') } 1 .. 3;
is_deeply([map { $_->{status} } @quick], [200, 200, 200], 'requests meanwhile are served');
my %pids = map { ($_->{body} =~ /(\d+)/)[0] => 1 } @quick;
is(scalar keys %pids, 1, 'by the free process');
open my $fh, '>', $gate or die; close $fh;
my $first = http_finish($held);
like($first->{body}, qr/^released (\d+)$/, 'the held one finishes');
my ($busy) = $first->{body} =~ /(\d+)/;
ok(!$pids{$busy}, 'and it was the other process');
--- no_error_log
[error]


=== TEST 7: a program stuck past timeout= gets 504; its process is killed and replaced
--- user_files
>>> www/stuck.php
<?php sleep(600); echo "never\n";
>>> www/quick.php
<?php echo "quick ", getmypid(), "\n";
--- http_config
rust_pool php program=/usr/bin/php-cgi processes=1 timeout=1s env=PHP_FCGI_MAX_REQUESTS=0;
--- config
root $TEST_NGINX_HTML_DIR/www;
location ~ \.php$ {
    include rust_fastcgi.conf;
    rust_fastcgi_pass php;
}
--- perl
my $old;
ok(wait_for(sub { ($old) = main::programs('php-cgi'); $old }, 30), 'php-cgi runs');
my $r = http_get('/stuck.php');
is($r->{status}, 504, 'the stuck request gets 504');
ok(wait_for(sub { !main::alive($old) }, 30), 'the stuck process is killed');
ok(wait_for(sub { http_get('/quick.php')->{status} == 200 }, 30), 'a new one serves');
unlike(http_get('/quick.php')->{body}, qr/ $old$/, 'not the old one');
like(error_log_text(), qr/process $old is stuck in a request past the pool's timeout; killing it/, 'the log says why');
--- error_log
did not finish within the timeout= of rust_pool "php"


=== TEST 8: max_requests recycles program processes, and a changed rust_pool line rolls them over on reload, with no request lost
--- user_files
>>> www/v.php
<?php echo $_ENV['VERSION'] ?? getenv('VERSION', true), " ", getmypid(), "\n";
--- http_config
rust_pool php program=/usr/bin/php-cgi processes=2 max_requests=5 env=VERSION=one env=PHP_FCGI_MAX_REQUESTS=0;
--- config
root $TEST_NGINX_HTML_DIR/www;
location ~ \.php$ {
    include rust_fastcgi.conf;
    rust_fastcgi_pass php;
}
--- perl
my ($bad, %pids) = (0);
ok(wait_for(sub {
    my $r = http_get('/v.php');
    $bad++ unless $r->{status} == 200 && $r->{body} =~ /^one (\d+)$/;
    $pids{$1}++ if $1;
    keys %pids > 2;
}, 60), 'more processes serve than the pool has at once (max_requests=5)');
is($bad, 0, 'every request is served while processes are recycled');
like(error_log_text(), qr/recycling process \d+: it served \d+ requests \(max_requests\)/, 'the log says so');

my $conf = servroot() . '/conf/nginx.conf';
my $text = do { local $/; open my $fh, '<', $conf or die; <$fh> };
$text =~ s/env=VERSION=one/env=VERSION=two/ or die;
open my $fh, '>', $conf or die; print $fh $text; close $fh;
my ($lost, %seen) = (0);
nginx_reload();
ok(wait_for(sub {
    my $r = http_get('/v.php');
    $lost++ unless $r->{status} == 200;
    $seen{(split / /, $r->{body})[0]}++;
    $r->{body} =~ /^two /;
}, 60), 'after nginx -s reload, the new processes serve');
is($lost, 0, 'and no request failed meanwhile');
--- no_error_log
[error]


=== TEST 9: rust_fastcgi_pass to a Python pool fails nginx -t, naming the fix
--- http_config
rust_pool py processes=1;
--- config
location / { rust_fastcgi_pass py; }
--- must_die
--- error_log eval
qr{rust_fastcgi_pass py: the pool runs Python apps; serve them with rust_wsgi_pool py or rust_wsgi /path/to/app.py pool=py in .*nginx.conf:\d+}


=== TEST 10: a Python location cannot use a program pool
--- http_config
rust_pool php program=/usr/bin/php-cgi;
--- config
location / { rust_wsgi $TEST_NGINX_APPS/hello.py pool=php; }
--- must_die
--- error_log eval
qr{the pool "php" runs the program /usr/bin/php-cgi, not Python apps; send requests to it with rust_fastcgi_pass php in .*nginx.conf:\d+}


=== TEST 11: a program that is not there, and Python options on a program pool, fail nginx -t
--- http_config
rust_pool php program=/usr/bin/no-such-php-cgi;
--- must_die
--- error_log eval
qr{"rust_pool php": "program=/usr/bin/no-such-php-cgi": "/usr/bin/no-such-php-cgi" does not exist in .*nginx.conf:\d+}


=== TEST 12: threads= is for Python pools
--- http_config
rust_pool php program=/usr/bin/php-cgi threads=4;
--- must_die
--- error_log eval
qr{"rust_pool php": threads= is for Python pools; a program pool runs its program= as it is in .*nginx.conf:\d+}


=== TEST 13: rust_fastcgi_pass to an unknown pool fails nginx -t
--- config
location / { rust_fastcgi_pass nowhere; }
--- must_die
--- error_log eval
qr{unknown pool "nowhere"; declare it in the http block with rust_pool nowhere \.\.\. in .*nginx.conf:\d+}


=== TEST 14: no program process outlives nginx: not after quit, not after the master is killed
--- http_config
rust_pool php program=/usr/bin/php-cgi processes=2;
rust_pool cgi program=/usr/sbin/fcgiwrap processes=1;
--- config
location / { rust_fastcgi_pass php; }
--- perl
my @programs;
ok(wait_for(sub { @programs = (main::programs('php-cgi'), main::programs('fcgiwrap')); @programs == 3 }, 30), 'three program processes run');
my ($sup) = supervisor_pids();
my @workers = worker_pids();
kill 'KILL', nginx_pid();
ok(nginx_wait_exit(30), 'the master is gone');
ok(wait_for(sub { !main::alive(@programs, $sup) }, 30), 'the supervisor and every program process followed it');
ok(wait_for(sub { !(my @left = glob "/tmp/ngx-rust-gateway.$sup.*") }, 30), 'and the sockets\' directory is gone');
kill 'KILL', @workers;


=== TEST 15: a pool that scales: a burst grows it to its maximum and no further, idle processes stop, and the status shows each step
--- http_config
rust_pool php program=/usr/bin/php-cgi processes=3 min_processes=1 idle_timeout=1s env=PHP_FCGI_MAX_REQUESTS=0;
--- config
root $TEST_NGINX_APPS/php;
location ~ \.php$ {
    include rust_fastcgi.conf;
    rust_fastcgi_pass php;
}
location = /status { rust_pool_status; }
--- perl
my $pool;
ok(wait_for(sub { $pool = main::pool_status('php'); $pool->{running} == 1 }, 30), 'it starts with min_processes=1');
is_deeply([@$pool{qw(min max wanted)}], [1, 3, 1], 'the status says min 1, max 3, wanted 1');
my $gate = servroot() . '/tmp/gate-open';
my @held = map { http_start(build_request("GET /gate.php?f=$gate&n=$_")) } 1 .. 5;
ok(wait_for(sub { $pool = main::pool_status('php'); $pool->{busy} == 3 && $pool->{waiting} == 2 }, 30),
    'five held requests: three processes busy, two requests waiting');
is($pool->{wanted}, 3, 'the pool grew to its maximum');
is($pool->{scale_ups}, 2, 'by two processes');
is($pool->{running}, 3, 'and no further, with requests still waiting');
open my $fh, '>', $gate or die; close $fh;
my @done = map { http_finish($_) } @held;
is_deeply([map { $_->{status} } @done], [(200) x 5], 'every held request is served');
ok(wait_for(sub { $pool = main::pool_status('php'); $pool->{running} == 1 && $pool->{wanted} == 1 }, 30),
    'once idle for idle_timeout, the pool shrinks back to min_processes');
is($pool->{idle_stops}, 2, 'two idle processes stopped');
is(scalar(main::programs('php-cgi')), 1, 'and are gone');
like(error_log_text(), qr/request\(s\) waiting; growing to 3 of 3 processes/, 'the log says when it grew');
like(error_log_text(), qr/was idle for 1000 ms; shrinking to 1 processes/, 'and when it shrank');
--- no_error_log
[error]


=== TEST 16: min_processes=0 starts the first process on the first request (php-fpm's ondemand), and stops it when idle
--- user_files
>>> www/pid.php
<?php echo "pid ", getmypid(), "\n";
--- http_config
rust_pool php program=/usr/bin/php-cgi processes=2 min_processes=0 idle_timeout=1s env=PHP_FCGI_MAX_REQUESTS=0;
--- config
root $TEST_NGINX_HTML_DIR/www;
location ~ \.php$ {
    include rust_fastcgi.conf;
    rust_fastcgi_pass php;
}
location = /status { rust_pool_status; }
--- perl
my $pool = main::pool_status('php');
is($pool->{running}, 0, 'no process runs before the first request');
is(scalar(main::programs('php-cgi')), 0, 'none at all');
my $r = http_get('/pid.php');
is($r->{status}, 200, 'the first request is served');
like($r->{body}, qr/^pid \d+$/, 'by a process started for it');
ok(wait_for(sub { main::pool_status('php')->{running} == 0 }, 30), 'which stops once idle');
is(http_get('/pid.php')->{status}, 200, 'and the next request starts one again');
--- no_error_log
[error]


=== TEST 17: a Python pool scales too: a request waiting for a thread grows it
--- http_config
rust_pool py processes=2 min_processes=1 threads=1 idle_timeout=1s;
--- config
location / { rust_wsgi $TEST_NGINX_APPS/gate.py pool=py; }
location = /status { rust_pool_status; }
--- perl
my $pool;
ok(wait_for(sub { $pool = main::pool_status('py'); $pool->{running} == 1 }, 30), 'one process to start with');
my $gate = servroot() . '/tmp/gate-open';
my @held = map { http_start(build_request("GET /?gate=$gate")) } 1 .. 2;
ok(wait_for(sub { $pool = main::pool_status('py'); $pool->{running} == 2 }, 60),
    'a second request waiting for the only thread starts a second process');
is($pool->{scale_ups}, 1, 'the status counts it');
open my $fh, '>', $gate or die; close $fh;
is_deeply([map { http_finish($_)->{status} } @held], [200, 200], 'both are served');
ok(wait_for(sub { main::pool_status('py')->{running} == 1 }, 30), 'and the idle one stops again');


=== TEST 18: a program that cannot start is a crash loop: 503 at once, and the log says why
--- http_config
rust_pool broken program=/bin/false processes=1;
--- config
location / { rust_fastcgi_pass broken; }
--- perl
ok(wait_for(sub { error_log_text() =~ /rust_pool "broken": crash loop: process \d+ exited with code 1/ }, 60), 'the supervisor names the crash loop');
my $r = http_get('/');
is($r->{status}, 503, 'requests get 503 instead of waiting');
like(error_log_text(), qr/rust_pool "broken" is in a crash loop/, 'and the request\'s log line says why');
--- error_log
crash loop


=== TEST 19: a program whose file changes is replaced one process at a time (reload=script), with no request lost
--- user_files
>>> app.pl
use strict;
use FCGI;
my $request = FCGI::Request();
while ($request->Accept() >= 0) {
    print "Content-Type: text/plain\r\n\r\nversion VERSION pid=$$\n";
}
--- setup
my $dir = servroot() . '/html';
system('cp', '/usr/bin/perl', "$dir/perl") == 0 or die;
--- http_config
rust_pool perl program=$TEST_NGINX_HTML_DIR/perl arg=$TEST_NGINX_HTML_DIR/app.pl processes=2;
--- config
location / {
    include rust_fastcgi_params;
    rust_fastcgi_pass perl;
}
--- perl
my $r = http_get('/');
like($r->{body}, qr/^version VERSION pid=\d+$/, 'the program serves');
my @first;
ok(wait_for(sub { @first = Test::Gateway::pool_pids(); @first == 2 }, 30), 'both processes run');
my %old = map { $_ => 1 } @first;
my $program = servroot() . '/html/perl';
my $bad = 0;
# A new file in place, as a package upgrade puts it (cp to a temp name, rename).
system('cp', $program, "$program.new") == 0 or die;
rename "$program.new", $program or die;
utime undef, undef, $program;
ok(wait_for(sub {
    my $r = http_get('/');
    $bad++ unless $r->{status} == 200;
    my @now = Test::Gateway::pool_pids();
    @now == 2 && !(grep { $old{$_} } @now);
}, 60), 'both processes were replaced');
is($bad, 0, 'every request meanwhile was served');
like(error_log_text(), qr/rust_pool "perl": its code changed; replacing its processes one by one/, 'the log says why');
--- no_error_log
[error]


=== TEST 20: nginx -s stop leaves no program process behind, even one in the middle of a request
--- user_files
>>> app.pl
use strict;
use FCGI;
my $request = FCGI::Request();
while ($request->Accept() >= 0) {
    print "Content-Type: text/plain\r\n\r\nperl\n";
}
--- http_config
rust_pool php program=/usr/bin/php-cgi processes=2 env=PHP_FCGI_MAX_REQUESTS=0;
rust_pool perl program=/usr/bin/perl arg=$TEST_NGINX_HTML_DIR/app.pl processes=1;
--- config
root $TEST_NGINX_APPS/php;
location ~ \.php$ {
    include rust_fastcgi.conf;
    rust_fastcgi_pass php;
}
location /perl { include rust_fastcgi_params; rust_fastcgi_pass perl; }
location = /status { rust_pool_status; }
--- perl
is(http_get('/perl')->{body}, "perl\n", 'the Perl program serves');
my @programs;
ok(wait_for(sub { @programs = (main::programs('php-cgi'), main::programs('perl')); @programs == 3 }, 30), 'three program processes run');
my ($sup) = supervisor_pids();
# A php-cgi is held in a request (its gate never opens) while nginx stops.
my $held = http_start(build_request('GET /gate.php?f=/nonexistent/never'));
ok(wait_for(sub { main::pool_status('php')->{busy} == 1 }, 30), 'a request runs');
kill 'TERM', nginx_pid();
ok(nginx_wait_exit(60), 'nginx -s stop: nginx exits');
ok(wait_for(sub { !main::alive(@programs, $sup) }, 30), 'the supervisor and every program process are gone');
close $held;


=== TEST 21: nginx -s quit leaves no program process behind
--- http_config
rust_pool php program=/usr/bin/php-cgi processes=2 env=PHP_FCGI_MAX_REQUESTS=0;
rust_pool cgi program=/usr/sbin/fcgiwrap processes=1;
--- config
root $TEST_NGINX_APPS/php;
location ~ \.php$ {
    include rust_fastcgi.conf;
    rust_fastcgi_pass php;
}
--- perl
like(http_get('/quick.php')->{body}, qr/^quick \d+$/, 'the pool serves');
my @programs;
ok(wait_for(sub { @programs = (main::programs('php-cgi'), main::programs('fcgiwrap')); @programs == 3 }, 30), 'three program processes run');
my ($sup) = supervisor_pids();
kill 'QUIT', nginx_pid();
ok(nginx_wait_exit(60), 'nginx -s quit: nginx exits');
ok(wait_for(sub { !main::alive(@programs, $sup) }, 30), 'the supervisor and every program process are gone');
ok(!(my @left = glob("/tmp/ngx-rust-gateway.$sup.*")), 'and so is the sockets\' directory');


=== TEST 22: with two nginx workers sharing one php-cgi process, every request waiting in either worker is served, one at a time
--- workers: 2
--- http_config
rust_pool one program=/usr/bin/php-cgi processes=1 env=PHP_FCGI_MAX_REQUESTS=0;
--- config
root $TEST_NGINX_APPS/php;
location ~ \.php$ {
    include rust_fastcgi.conf;
    rust_fastcgi_pass one;
}
location = /status { rust_pool_status; }
--- perl
my $gate = servroot() . '/tmp/gate-open';
my $held = http_start(build_request("GET /gate.php?f=$gate"));
ok(wait_for(sub { main::pool_status('one')->{busy} == 1 }, 30), 'the only process is held');
my @waiting = map { http_start(build_request("GET /quick.php?n=$_")) } 1 .. 16;
ok(wait_for(sub { main::pool_status('one')->{waiting} == 16 }, 30), 'sixteen requests wait, in both workers');
open my $fh, '>', $gate or die; close $fh;
like(http_finish($held)->{body}, qr/^released \d+$/, 'the held request finishes');
my @done = map { http_finish($_) } @waiting;
is_deeply([map { $_->{status} } @done], [(200) x 16], 'then every waiting request is served');
is(main::pool_status('one')->{waiting}, 0, 'and none waits any more');
is(main::pool_status('one')->{processes}[0]{requests}, 17, 'all by the one process');
--- no_error_log
[error]


=== TEST 23: a request that finds no free place within queue_timeout gets 503, and the held one is still served
--- http_config
rust_pool one program=/usr/bin/php-cgi processes=1 queue_timeout=1s env=PHP_FCGI_MAX_REQUESTS=0;
--- config
root $TEST_NGINX_APPS/php;
location ~ \.php$ {
    include rust_fastcgi.conf;
    rust_fastcgi_pass one;
}
location = /status { rust_pool_status; }
--- perl
my $gate = servroot() . '/tmp/gate-open';
my $held = http_start(build_request("GET /gate.php?f=$gate"));
ok(wait_for(sub { main::pool_status('one')->{busy} == 1 }, 30), 'the only process is held');
my $r = http_get('/quick.php');
is($r->{status}, 503, 'a request that waits past queue_timeout gets 503');
is(main::pool_status('one')->{waiting}, 0, 'and is out of the line');
open my $fh, '>', $gate or die; close $fh;
like(http_finish($held)->{body}, qr/^released \d+$/, 'the held request is served');
like(http_get('/quick.php')->{body}, qr/^quick \d+$/, 'and the next one');
--- error_log
no process was ready within queue_timeout


=== TEST 24: a program pool's answers as a subrequest (an SSI include) and behind nginx's filters (gzip)
--- user_files
>>> page.html
<p>before</p><!--# include virtual="/quick.php" --><p>after</p>
--- http_config
rust_pool one program=/usr/bin/php-cgi processes=1 env=PHP_FCGI_MAX_REQUESTS=0;
--- config
location = /page.html { ssi on; root $TEST_NGINX_HTML_DIR; }
location ~ \.php$ {
    root $TEST_NGINX_APPS/php;
    include rust_fastcgi.conf;
    gzip on;
    gzip_min_length 1;
    gzip_types text/html;
    rust_fastcgi_pass one;
}
--- perl
my $r = http_get('/page.html');
is($r->{status}, 200, 'the page with an include is served');
like($r->{body}, qr{^<p>before</p>quick \d+\n<p>after</p>$}, 'with the program\'s answer in its place');
$r = http_request(build_request('GET /quick.php', 'Accept-Encoding: gzip'));
is($r->{headers}{'content-encoding'}[0], 'gzip', 'gzip compresses the program\'s answer');
use IO::Uncompress::Gunzip qw(gunzip);
gunzip(\$r->{body} => \my $plain);
like($plain, qr/^quick \d+$/, 'which is intact');
--- no_error_log
[error]


=== TEST 25: rust_fastcgi_read_timeout, as fastcgi_read_timeout: a program silent past it gets 504 and the log names the directive; its process is not stopped and serves the next request once done
--- http_config
rust_pool one program=/usr/bin/php-cgi processes=1 env=PHP_FCGI_MAX_REQUESTS=0;
--- config
location ~ \.php$ {
    root $TEST_NGINX_APPS/php;
    include rust_fastcgi.conf;
    rust_fastcgi_read_timeout 300ms;
    rust_fastcgi_pass one;
}
--- perl
my $gate = servroot() . '/tmp/gate';
my $r = http_get("/gate.php?f=$gate");
is($r->{status}, 504, 'silent past rust_fastcgi_read_timeout: 504');
my @pids = Test::Gateway::pool_pids();
my $next = http_start(build_request('GET /quick.php'));
Test::Gateway::write_file($gate, '');
$r = http_finish($next);
is($r->{status}, 200, 'the next request is served once the program is done');
like($r->{body}, qr/^quick (\d+)$/, 'by php-cgi');
is_deeply([Test::Gateway::pool_pids()], \@pids, 'by the same process: a read timeout does not stop it');
--- error_log
rust_fastcgi_pass: the app sent nothing for 300 ms; answering 504 (raise rust_fastcgi_read_timeout if it is meant to be slow)


=== TEST 26: an nginx worker that dies while it holds a place in a program process (SIGKILL; SIGTERM, whose fast exit does not end its requests): the supervisor gives the place back, and the respawned worker's requests are served
--- http_config
rust_pool one program=/usr/bin/php-cgi processes=1 queue_timeout=60s env=PHP_FCGI_MAX_REQUESTS=0;
--- config
location ~ \.php$ {
    root $TEST_NGINX_APPS/php;
    include rust_fastcgi.conf;
    rust_fastcgi_pass one;
}
location = /status { rust_status; }
--- perl
use JSON::PP;
sub active { my $p = decode_json(http_get('/status')->{body})->{pools}[0]; return $p ? $p->{processes}[0]{active} : -1 }
for my $signal (qw(KILL TERM)) {
    my $gate = servroot() . "/tmp/gate-$signal";
    my $held = http_start(build_request("GET /gate.php?f=$gate"));
    ok(wait_for(sub { main::active() == 1 }, 30), "$signal: the one place of the one process is held");
    my ($worker) = worker_pids();
    kill $signal, $worker;
    close $held;
    ok(wait_for(sub { my @w = worker_pids(); @w == 1 && $w[0] != $worker }, 30), "$signal: the master started another worker");
    # The program finishes the request it had; its place was the dead worker's.
    Test::Gateway::write_file($gate, '');
    ok(wait_for(sub { error_log_text() =~ /nginx worker $worker died holding 1 place\(s\) in program processes; they are free again/ }, 30),
       "$signal: the supervisor gave the place back");
    my $r = http_get('/quick.php');
    is($r->{status}, 200, "$signal: a request after it is served (it waited behind a leaked place, up to queue_timeout, before)");
    like($r->{body}, qr/^quick \d+$/, "$signal: by php-cgi");
    is(main::active(), 0, "$signal: and no place is held now");
}
--- expected_alerts
exited on signal 9
