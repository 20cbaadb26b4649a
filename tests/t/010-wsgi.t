# rust_wsgi serving WSGI apps: the environ, bodies both ways, errors.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::Gateway;

run_tests();

__DATA__

=== TEST 1: hello world
--- config
location / {
    rust_wsgi $TEST_NGINX_APPS/hello.py;
}
--- request
GET /
--- error_code: 200
--- response_body chomp
Hello, world!
--- no_error_log
[error]


=== TEST 2: the environ holds what PEP 3333 requires
--- config
location /app/ {
    rust_wsgi $TEST_NGINX_APPS/environ.py;
}
--- perl
my $r = http_request("GET /app/some/path?a=1&b=%20x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
    . "X-Forwarded-For: 10.0.0.1\r\nAccept: text/plain\r\nAccept: text/html\r\n"
    . "Cookie: a=1\r\nCookie: b=2\r\n\r\n");
for my $re (
  qr/"REQUEST_METHOD": "GET"/,
  qr/"SCRIPT_NAME": "\/app"/,
  qr/"PATH_INFO": "\/some\/path"/,
  qr/"QUERY_STRING": "a=1&b=%20x"/,
  qr/"REQUEST_URI": "\/app\/some\/path\?a=1&b=%20x"/,
  qr/"SERVER_NAME": "localhost"/,
  qr/"SERVER_PORT": "@{[server_port()]}"/,
  qr/"SERVER_PROTOCOL": "HTTP\/1.1"/,
  qr/"REMOTE_ADDR": "127.0.0.1"/,
  qr/"REMOTE_PORT": "\d+"/,
  qr/"HTTP_HOST": "localhost"/,
  qr/"HTTP_X_FORWARDED_FOR": "10.0.0.1"/,
  qr/"HTTP_ACCEPT": "text\/plain, text\/html"/,
  qr/"HTTP_COOKIE": "a=1; b=2"/,
  qr/"wsgi.version": \[1, 0\]/,
  qr/"wsgi.url_scheme": "http"/,
  qr/"wsgi.input": "<WsgiInput>"/,
  qr/"wsgi.errors": "<LogStream>"/,
  qr/"wsgi.file_wrapper": "<type>"/,
  qr/"wsgi.multithread": true/,
  qr/"wsgi.multiprocess": true/,
  qr/"wsgi.run_once": false/,
) {
    like($r->{body}, $re, "environ has $re");
}
unlike($r->{body}, qr/"CONTENT_LENGTH"/, 'no CONTENT_LENGTH without a body');
unlike($r->{body}, qr/"CONTENT_TYPE"/, 'no CONTENT_TYPE without the header');


=== TEST 3: a POST body is echoed back, with CONTENT_LENGTH
--- config
location / {
    rust_wsgi $TEST_NGINX_APPS/echo.py;
}
--- request
POST /?how=read
hello, request body
--- more_headers
Content-Type: text/plain
--- error_code: 200
--- response_body chomp
hello, request body
--- response_headers
X-Content-Length: 19


=== TEST 4: wsgi.input read(n), line iteration and readlines
--- config
location / {
    rust_wsgi $TEST_NGINX_APPS/echo.py;
}
--- perl
my $body = "line one\nline two\nlast";
my $post = sub {
    http_request("POST $_[0] HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
        . "Content-Length: " . length($body) . "\r\n\r\n$body")->{body};
};
is($post->('/?how=chunks'), "line on|e\nline |two\nlas|t", 'read(7) until empty');
is($post->('/?how=lines'), "[line one\n][line two\n][last]", 'iteration yields lines');
is($post->('/?how=readlines'), "<line one\n><line two\n><last>", 'readlines');


=== TEST 5: a body larger than client_body_buffer_size comes from nginx's temp file
--- http_config
client_body_buffer_size 8k;
client_max_body_size 10m;
--- config
location / {
    rust_wsgi $TEST_NGINX_APPS/echo.py;
}
--- perl
my $body = join '', map { sprintf "%07d\n", $_ } 1 .. 100000;    # 800 kB
my $r = http_request("POST /?how=read HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
    . "Content-Length: " . length($body) . "\r\n\r\n$body");
is($r->{status}, 200, 'status');
is(length $r->{body}, length $body, 'length');
ok($r->{body} eq $body, 'the app read the body intact');
--- error_log
a client request body is buffered to a temporary file


=== TEST 5b: a large body held in memory reaches the app intact, and nginx still logs it as $request_body
--- http_config
client_body_buffer_size 1m;
client_max_body_size 10m;
log_format bodies '$request_body';
--- config
location / {
    rust_wsgi $TEST_NGINX_APPS/echo.py;
    access_log logs/bodies.log bodies;
}
--- perl
use Time::HiRes qw(sleep);
# Big enough to be nginx's own pool block, which the module adopts instead
# of copying; the log reads it after the app is done with it.
my @bodies = map { my $n = $_; join '', map { sprintf "%07d,", $_ * $n } 1 .. 30000 } 1 .. 3;
for my $body (@bodies) {
    my $r = http_request("POST /?how=read HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
        . "Content-Length: " . length($body) . "\r\n\r\n$body");
    is($r->{status}, 200, 'status');
    ok($r->{body} eq $body, 'the app read the ' . length($body) . '-byte body intact');
}
# nginx writes the access log line after the response went out.
my $want = join('', map { "$_\n" } @bodies);
my $log;
wait_for(sub { $log = Test::Gateway::slurp(Test::Gateway::servroot() . '/logs/bodies.log') // ''; length $log >= length $want }, 30);
is($log, $want, 'the access log has every body, byte for byte');


=== TEST 6: a chunked request body gets a correct CONTENT_LENGTH
--- config
location / {
    rust_wsgi $TEST_NGINX_APPS/echo.py;
}
--- raw_request eval
"POST /?how=read HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
. "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
--- error_code: 200
--- response_body chomp
hello world
--- response_headers
X-Content-Length: 11


=== TEST 7: a generator streams its chunks (chunked on HTTP/1.1)
--- config
location / {
    rust_wsgi $TEST_NGINX_APPS/stream.py;
}
--- request
GET /?n=4
--- error_code: 200
--- response_headers
Transfer-Encoding: chunked
X-Custom: yes
!Content-Length
--- response_body
chunk 0
chunk 1
chunk 2
chunk 3
--- error_log
stream.py: close() called


=== TEST 8: a streamed response on HTTP/1.0 ends by closing the connection
--- config
location / {
    rust_wsgi $TEST_NGINX_APPS/stream.py;
}
--- request
GET /?n=2 HTTP/1.0
--- error_code: 200
--- response_headers
!Transfer-Encoding
!Content-Length
--- response_body
chunk 0
chunk 1


=== TEST 9: HEAD sends no body but the same headers
--- config
location / {
    rust_wsgi $TEST_NGINX_APPS/hello.py;
}
--- request
HEAD /
--- error_code: 200
--- response_headers
Content-Length: 13
--- response_body chomp


=== TEST 10: the app's own status line and write() callable
--- config
location / {
    rust_wsgi $TEST_NGINX_APPS/misc.py;
}
--- perl
my $r = http_get('/status');
like($r->{raw}, qr{^HTTP/1.1 299 Custom Reason\r\n}, 'custom status line passes through');
$r = http_get('/write');
is($r->{body}, 'written and returned', 'write() output comes before the iterable');
$r = http_get('/empty');
is($r->{status}, 204, '204 with an empty body');


=== TEST 11: an exception in the app answers 500 and logs the traceback
--- config
location / {
    rust_wsgi $TEST_NGINX_APPS/raises.py;
}
--- request
GET /
--- error_code: 500
--- error_log eval
[
  qr/\[error\] .*rust_wsgi: the app ".*raises.py" raised an exception \(traceback follows\), client: 127.0.0.1/,
  qr/\[error\] .*Traceback \(most recent call last\):/,
  qr/\[error\] .*File ".*raises.py", line \d+, in application/,
  qr/\[error\] .*ZeroDivisionError: deliberate failure in raises.py/,
]


=== TEST 12: an exception after the body started closes the connection and calls close()
--- config
location / {
    rust_wsgi $TEST_NGINX_APPS/raises.py;
}
--- perl
my $r = http_get('/?iter');
is($r->{status}, 200, 'the head was already sent');
is($r->{body}, "first chunk\n", 'the first chunk arrived');
ok(!$r->{chunked_complete}, 'no final chunk: the client can tell the response is broken');
--- error_log eval
[
  qr/RuntimeError: boom in the middle of the body/,
  qr/raises.py: close\(\) called/,
]


=== TEST 13: bad status, CR/LF in a header, str bodies and no start_response answer 500 and say why
--- config
location / {
    rust_wsgi $TEST_NGINX_APPS/raises.py;
}
--- perl
for my $case (qw(status crlf str nostart)) {
    my $r = http_get("/?$case");
    is($r->{status}, 500, "$case: 500");
    unlike($r->{raw}, qr/pwned/, "$case: nothing of the bad header reached the client");
}
--- error_log eval
[
  qr/ValueError: invalid status "2OO OK"/,
  qr/ValueError: invalid value for header "X-Evil": contains CR or LF/,
  qr/TypeError: the app produced a body chunk of type str; WSGI bodies must be bytes/,
  qr/the app produced body data before calling start_response\(\)|finished without a response head/,
]


=== TEST 14: an app file with a syntax error: traceback at worker start, 500 for its location, the rest keeps working
--- config
location /broken {
    rust_wsgi $TEST_NGINX_APPS/broken.py;
}
location / {
    rust_wsgi $TEST_NGINX_APPS/hello.py;
}
--- perl
is(http_get('/broken')->{status}, 500, 'the broken app answers 500');
is(http_get('/broken')->{status}, 500, 'and keeps answering 500');
is(http_get('/')->{body}, 'Hello, world!', 'other locations still work');
my $log = error_log_text();
my $count = () = $log =~ /SyntaxError/g;
is($count, 1, 'the traceback is logged once, not per request');
--- error_log eval
[
  qr/rust_wsgi: cannot load ".*broken.py" \(callable "application"\); traceback follows/,
  qr/SyntaxError: /,
  qr/neither it nor a file in its traceback has changed since/,
]


=== TEST 15: fixing a broken app file fixes its location without a reload
--- user_files
>>> fixme.py
def application(environ, start_response)
--- config
location / {
    rust_wsgi $TEST_NGINX_HTML_DIR/fixme.py;
}
--- perl
is(http_get('/')->{status}, 500, 'broken at first');
my $path = servroot() . '/html/fixme.py';
open my $fh, '>', $path or die $!;
print $fh "def application(environ, start_response):\n    start_response('200 OK', [])\n    return [b'fixed']\n";
close $fh;
utime undef, time + 5, $path;
my $r = http_get('/');
is($r->{status}, 200, 'fixed');
is($r->{body}, 'fixed', 'new code');


=== TEST 16: a file without the callable answers 500 with a clear message
--- config
location / {
    rust_wsgi $TEST_NGINX_APPS/nocallable.py;
}
--- request
GET /
--- error_code: 500
--- error_log eval
qr/AttributeError: .*nocallable.py defines no "application"; name the callable: rust_wsgi .*nocallable.py:NAME/


=== TEST 17: the same app file in several locations is imported once per worker
--- config
location /one/ {
    rust_wsgi $TEST_NGINX_APPS/misc.py;
}
location /two/ {
    rust_wsgi $TEST_NGINX_APPS/misc.py;
}
--- perl
is(http_get('/one/loads')->{body}, '1', 'first location');
is(http_get('/two/loads')->{body}, '1', 'second location shares the module');


=== TEST 18: wsgi.errors writes lines to nginx's error log
--- config
location / {
    rust_wsgi $TEST_NGINX_APPS/misc.py;
}
--- request
GET /errors
--- response_body chomp
logged
--- error_log eval
[
  qr/\[error\] .*misc.py: first line, client: 127.0.0.1/,
  qr/\[error\] .*misc.py: second line, client: 127.0.0.1/,
]


=== TEST 19: a large request header within large_client_header_buffers reaches the app
--- http_config
large_client_header_buffers 4 64k;
--- config
location / {
    rust_wsgi $TEST_NGINX_APPS/misc.py;
}
--- request
GET /header-size
--- more_headers eval
"X-Big: " . ("x" x 40000)
--- error_code: 200
--- response_body chomp
40000


=== TEST 20: a header beyond nginx's limits is refused by nginx; the worker lives on
--- config
location / {
    rust_wsgi $TEST_NGINX_APPS/misc.py;
}
--- perl
my $r = http_request("GET /header-size HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nX-Big: "
    . ("x" x 100000) . "\r\n\r\n");
like($r->{status}, qr/^(400|494)$/, 'nginx refuses the header');
my @before = worker_pids();
is(http_get('/loads')->{status}, 200, 'the next request is served');
is_deeply([worker_pids()], \@before, 'by the same worker');


=== TEST 21: a client that disconnects mid-response: the iterable's close() still runs
--- config
location / {
    rust_wsgi $TEST_NGINX_APPS/stream.py;
}
--- request
GET /?n=50&delay=0.05
--- abort_after: 0.3
--- wait: 1
--- error_log
stream.py: close() called


=== TEST 22: app code cannot replace nginx's signal handlers
--- config
location / {
    rust_wsgi $TEST_NGINX_APPS/misc.py;
}
--- request
GET /signal
--- response_body_like: ^refused: signal only works in main thread


=== TEST 23: a client that stops reading holds the app back; other requests keep flowing
--- http_config
rust_wsgi_threads 2;
--- config
location /firehose {
    rust_wsgi $TEST_NGINX_APPS/firehose.py;
}
location / {
    rust_wsgi $TEST_NGINX_APPS/hello.py;
}
--- perl
use Time::HiRes qw(sleep time);
my $s = http_start("GET /firehose HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
sysread($s, my $first, 1024);
like($first, qr{^HTTP/1.1 200}, 'the stream started');
sleep 1.5;    # the client reads nothing; unchecked, the app would produce gigabytes
# The firehose's thread waits for the client, which never reads: had it
# kept the GIL, this request could not be served at all.
is(http_get('/')->{body}, 'Hello, world!', 'another request is served meanwhile: the waiting thread released the GIL');
close $s;
sleep 0.5;
my ($produced) = error_log_text() =~ /firehose: produced (\d+) bytes/;
ok(defined $produced, 'close() ran after the client left');
cmp_ok($produced // 1e12, '<', 64 * 1024 * 1024, sprintf('the app produced only %.1f MiB', ($produced // 0) / 1048576));


=== TEST 24: wsgi.file_wrapper around a real file: nginx sends the file, Python never reads it
--- config
location / {
    rust_wsgi $TEST_NGINX_APPS/files.py;
}
--- main_config
env HTML_DIR=$TEST_NGINX_HTML_DIR;
--- perl
my $data = join '', map { chr(($_ * 7) % 256) } 0 .. 300_000;
open my $fh, '>', servroot() . '/html/data.bin' or die $!;
print $fh $data;
close $fh;
chmod 0644, servroot() . '/html/data.bin';
my $r = http_get('/real');
is($r->{status}, 200, 'status');
ok($r->{body} eq $data, 'the whole file arrived intact');
is($r->{headers}{'content-length'}[0], length $data, 'with its length');
ok(!$r->{headers}{'transfer-encoding'}, 'not chunked');
$r = http_get('/offset');
ok($r->{body} eq substr($data, 10), 'transmission starts at the current position');
$r = http_get('/limited');
ok($r->{body} eq substr($data, 0, 100), "the app's Content-Length limits what is sent");
$r = http_get('/bytesio');
ok($r->{body} eq $data, 'a file-like without a file descriptor is iterated instead');
--- no_error_log
read through Python


=== TEST 25: wsgi.file_wrapper with sendfile off goes through nginx's own buffers
--- http_config
sendfile off;
--- main_config
env HTML_DIR=$TEST_NGINX_HTML_DIR;
--- config
location / {
    rust_wsgi $TEST_NGINX_APPS/files.py;
}
--- user_files
>>> small.txt
a small file served by nginx from a file buffer
--- request
GET /real?f=small.txt
--- response_body
a small file served by nginx from a file buffer


=== TEST 26: an app that sends more than its Content-Length: truncated, logged, connection closed
--- config
location / {
    rust_wsgi $TEST_NGINX_APPS/length.py;
}
--- perl
my $r = http_request("GET /over HTTP/1.1\r\nHost: localhost\r\n\r\nGET /exact HTTP/1.1\r\nHost: localhost\r\n\r\n");
is($r->{status}, 200, 'status');
is($r->{body}, '01234', 'exactly the declared bytes, and the connection closed after them');
--- error_log
the app sent more than its Content-Length; the excess is dropped and the connection closed


=== TEST 27: an app that sends less than its Content-Length: nothing padded, connection closed, logged
--- config
location / {
    rust_wsgi $TEST_NGINX_APPS/length.py;
}
--- perl
my $r = http_request("GET /under HTTP/1.1\r\nHost: localhost\r\n\r\n", timeout => 5);
is($r->{body}, '01234', 'only what the app sent');
--- error_log
the app's response ended 5 bytes short of its Content-Length; closing the connection


=== TEST 28: a body that matches its Content-Length keeps the connection alive
--- config
location / {
    rust_wsgi $TEST_NGINX_APPS/length.py;
}
--- perl
my $r = http_request("GET /exact HTTP/1.1\r\nHost: localhost\r\n\r\nGET /exact HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
my $count = () = $r->{raw} =~ m{HTTP/1.1 200}g;
is($count, 2, 'both pipelined requests answered on one connection');
--- no_error_log
[error]


=== TEST 29: rust_wsgi_errors_level sets the level of wsgi.errors lines
--- config
location / {
    rust_wsgi $TEST_NGINX_APPS/misc.py;
    rust_wsgi_errors_level warn;
}
--- request
GET /errors
--- error_log eval
qr/\[warn\] .*misc.py: first line, client: 127.0.0.1/
--- no_error_log eval
qr/\[error\] .*misc.py/


=== TEST 30: an unknown errors level fails nginx -t
--- config
location / {
    rust_wsgi $TEST_NGINX_APPS/misc.py;
    rust_wsgi_errors_level loud;
}
--- must_die
--- error_log eval
qr/"rust_wsgi_errors_level loud": unknown level; use one of debug, info, notice, warn, error, crit, alert, emerg in .*nginx.conf:\d+/


=== TEST 31: print() and sys.stderr become nginx log lines, in the request's context while serving
--- config
location / {
    rust_wsgi $TEST_NGINX_APPS/printer.py;
}
--- request
GET /
--- response_body chomp
printed
--- error_log eval
[
  qr/\[error\] \d+#\d+: printer.py: printed at import$/m,
  qr/\[error\] .*printer.py: printed while serving, client: 127.0.0.1, server: localhost, request: "GET \/ HTTP\/1.1"/,
  qr/\[error\] .*printer.py: partial line to stderr, client: 127.0.0.1/,
  qr/\[error\] .*printer.py: a logging warning, client: 127.0.0.1/,
]
