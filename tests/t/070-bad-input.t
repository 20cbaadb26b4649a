# Bad input, tried on purpose: each gets a clear answer, and no worker dies.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::Gateway;

run_tests();

__DATA__

=== TEST 1: a request body larger than client_max_body_size gets 413 from nginx
--- http_config
client_max_body_size 1k;
--- config
location / {
    rust_wsgi $TEST_NGINX_APPS/echo.py;
}
--- perl
my $body = 'x' x 5000;
my $r = http_request("POST / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: 5000\r\n\r\n$body");
is($r->{status}, 413, 'refused with 413');
my @workers = worker_pids();
is(http_request("POST / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")->{body}, 'ok', 'the next request is served');
is_deeply([worker_pids()], \@workers, 'by the same worker');
--- error_log
client intended to send too large body


=== TEST 2: a client that disconnects mid-upload: the app is never called, nothing breaks
--- config
location / {
    rust_wsgi $TEST_NGINX_APPS/echo.py;
}
--- perl
use Time::HiRes qw(sleep);
my $s = http_start("POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000000\r\n\r\n" . ('x' x 100000));
sleep 0.3;
close $s;
sleep 0.3;
is(http_request("POST / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")->{body}, 'ok', 'the next request is served');
--- error_log
client prematurely closed connection


=== TEST 3: an app that returns a non-iterable answers 500 and says so
--- config
location / {
    rust_wsgi $TEST_NGINX_APPS/misbehave.py;
}
--- request
GET /noniter
--- error_code: 500
--- error_log
TypeError: 'int' object is not iterable


=== TEST 4: start_response called twice without exc_info answers 500
--- config
location / {
    rust_wsgi $TEST_NGINX_APPS/misbehave.py;
}
--- request
GET /twice
--- error_code: 500
--- error_log
RuntimeError: start_response() was already called; pass exc_info to replace the headers after an error


=== TEST 5: exc_info before the head was sent replaces status and headers
--- config
location / {
    rust_wsgi $TEST_NGINX_APPS/misbehave.py;
}
--- request
GET /excinfo
--- error_code: 503
--- response_headers
X-Replaced: yes
!X-First
--- response_body chomp
the app's own error page


=== TEST 6: exc_info after the head was sent re-raises: the connection is closed after what was sent
--- config
location / {
    rust_wsgi $TEST_NGINX_APPS/misbehave.py;
}
--- perl
my $r = http_get('/excinfo-late');
is($r->{status}, 200, 'the head went out');
is($r->{body}, 'partial ', 'then what was written');
ok(!$r->{chunked_complete}, 'and no final chunk');
--- error_log
ValueError: something failed after the head


=== TEST 7: a response with 10,000 headers is delivered
--- config
location / {
    rust_wsgi $TEST_NGINX_APPS/misbehave.py;
}
--- perl
my $r = http_get('/headers10k');
is($r->{status}, 200, 'status');
is(scalar(grep { /^x-h\d+$/ } keys %{ $r->{headers} }), 10000, 'all 10,000 headers');
is($r->{headers}{'x-h9999'}[0], 'v9999', 'the last one intact');
is($r->{body}, 'many headers', 'and the body');


=== TEST 8: latin-1 header values pass; text outside latin-1 is refused
--- config
location / {
    rust_wsgi $TEST_NGINX_APPS/misbehave.py;
}
--- perl
my $r = http_get('/latin1');
is($r->{status}, 200, 'latin-1 accepted');
is($r->{headers}{'x-name'}[0], "caf\xe9", 'sent as latin-1 bytes');
is(http_get('/not-latin1')->{status}, 500, 'a euro sign is refused');
--- error_log
ValueError: header value "€" is not latin-1 text


=== TEST 9: wsgiref.validate finds nothing to complain about
--- config
location / {
    rust_wsgi $TEST_NGINX_APPS/validated.py;
}
--- perl
my $body = "first line\nsecond line\nthird";
my $post = sub {
    my ($path) = @_;
    http_request("POST $path HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
        . "Content-Type: text/plain\r\nContent-Length: " . length($body) . "\r\n\r\n$body");
};
is(http_get('/')->{body}, 'validated', 'GET');
is($post->('/post')->{body}, $body, 'POST read with readline and read');
is($post->('/lines')->{body}, '3 lines', 'readlines');
is(http_get('/stream')->{body}, "chunk 0\nchunk 1\nchunk 2\n", 'a generator');
is(http_get('/file')->{body}, 'from a file-like object', 'wsgi.file_wrapper');
is(http_get('/errors')->{status}, 200, 'wsgi.errors');
is(http_request("HEAD / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")->{status}, 200, 'HEAD');
is(http_request("GET /?a=%20b HTTP/1.0\r\n\r\n")->{body}, 'validated', 'HTTP/1.0 without a Host header');
--- no_error_log
AssertionError
Traceback
--- error_log
validated: a line
