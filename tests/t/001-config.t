# Loading the module and configuring it: what nginx -t accepts and refuses.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::Gateway;

run_tests();

__DATA__

=== TEST 1: the module loads and serves a WSGI app
--- config
location / {
    rust_wsgi $TEST_NGINX_APPS/hello.py;
}
--- request
GET /
--- error_code: 200
--- response_body chomp
Hello, world!
--- response_headers
Content-Type: text/plain
Content-Length: 13


=== TEST 2: an explicit callable name
--- user_files
>>> named.py
def app(environ, start_response):
    start_response("200 OK", [])
    return [b"named callable"]
--- config
location / {
    rust_wsgi $TEST_NGINX_HTML_DIR/named.py:app;
}
--- request
GET /
--- response_body chomp
named callable


=== TEST 3: a missing app file fails nginx -t, naming the file, the line and the fix
--- config
location / {
    rust_wsgi /nonexistent/app.py;
}
--- must_die
--- error_log eval
[
  qr{\[emerg\] .*"rust_wsgi": app file "/nonexistent/app.py" does not exist; give the path of the Python file that defines the WSGI callable in .*/conf/nginx.conf:\d+},
]


=== TEST 4: an invalid callable name fails nginx -t
--- config
location / {
    rust_wsgi $TEST_NGINX_APPS/hello.py:not-a-name;
}
--- must_die
--- error_log eval
qr{"not-a-name" is not a valid Python name for the callable; write rust_wsgi /path/to/app.py or /path/to/app.py:callable in .*nginx.conf:\d+}


=== TEST 5: rust_wsgi twice in one location fails
--- config
location / {
    rust_wsgi $TEST_NGINX_APPS/hello.py;
    rust_wsgi $TEST_NGINX_APPS/hello.py;
}
--- must_die
--- error_log eval
qr{"rust_wsgi" is duplicate; a location serves one app in .*nginx.conf:\d+}


=== TEST 6: rust_wsgi_threads must be at least 1
--- http_config
rust_wsgi_threads 0;
--- must_die
--- error_log eval
qr{value must be between 1 and 1024 in .*nginx.conf:\d+}


=== TEST 7: rust_wsgi is a location directive
--- http_config
rust_wsgi /tmp/app.py;
--- must_die
--- error_log eval
qr{"rust_wsgi" directive is not allowed here in .*nginx.conf:\d+}


=== TEST 8: a relative app path is resolved against the nginx prefix
--- config
location / {
    rust_wsgi apps/hello.py;
}
--- request
GET /
--- response_body chomp
Hello, world!


=== TEST 9: nginx -t does not start Python or import apps; workers do
--- user_files
>>> marker.py
open("$TEST_NGINX_SERVROOT/tmp/imported", "a").write("imported\n")
def application(environ, start_response):
    start_response("200 OK", [])
    return [b"ok"]
--- config
location / {
    rust_wsgi $TEST_NGINX_HTML_DIR/marker.py;
}
--- perl
my $marker = servroot() . '/tmp/imported';
is(http_get('/')->{body}, 'ok', 'the worker serves the app');
ok(-e $marker, 'the worker imported the app');
unlink $marker;
my ($code, $out) = nginx_command('-t');
is($code, 0, 'nginx -t passes') or diag($out);
ok(!-e $marker, 'nginx -t did not import the app');


=== TEST 10: rust_wsgi_spin takes microseconds or milliseconds, at most 10ms
--- http_config
rust_wsgi_spin 1s;
--- must_die
--- error_log eval
qr{"rust_wsgi_spin 1s": give a time of at most 10ms, such as 100us, or 0 to turn it off in .*nginx.conf:\d+}
