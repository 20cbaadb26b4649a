# How app files are imported: any file named by rust_wsgi, rust_asgi or a
# pool is Python source, whatever its suffix; a failed import leaves
# nothing half-done behind, and fixing the file that broke fixes the
# location without a restart.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::Gateway;

run_tests();

__DATA__

=== TEST 1: a .wsgi file (mod_wsgi's WSGIScriptAlias target) is served, embedded and from a pool
--- user_files
>>> site.wsgi
def application(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [b'from a .wsgi file']
--- http_config
rust_pool w processes=1;
--- config
location /embedded { rust_wsgi $TEST_NGINX_HTML_DIR/site.wsgi; }
location /pooled { rust_wsgi $TEST_NGINX_HTML_DIR/site.wsgi pool=w; }
--- perl
for my $where (qw(embedded pooled)) {
    my $r = http_get("/$where");
    is($r->{status}, 200, "$where: served");
    is($r->{body}, 'from a .wsgi file', "$where: by the .wsgi file");
}
unlike(error_log_text(), qr/cannot be imported/, 'no import error');

=== TEST 2: a package whose import fails halfway (a registry left "loading"), then is fixed: both apps that import it work, without a restart
--- user_files
>>> registry/__init__.py
# Like Django's app registry: setting up twice is refused, so a setup that
# failed halfway poisons every later import of a module still cached.
_loading = False
ready = False

def setup():
    global _loading, ready
    if _loading:
        raise RuntimeError("setup() isn't reentrant")
    _loading = True
    from registry import plugins
    ready = plugins.READY
>>> registry/plugins.py
raise ImportError("plugins are broken")
>>> one.py
import registry
registry.setup()

def application(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [b'one ready=%r' % registry.ready]
>>> two.py
import registry

def application(environ, start_response):
    if not registry.ready:
        registry.setup()
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [b'two ready=%r' % registry.ready]
--- config
location /one { rust_wsgi $TEST_NGINX_HTML_DIR/one.py; }
location /two { rust_wsgi $TEST_NGINX_HTML_DIR/two.py; }
--- perl
is(http_get('/one')->{status}, 500, 'the app whose import fails halfway: 500');
like(error_log_text(), qr/ImportError: plugins are broken/, 'with the traceback');
write_atomically(servroot() . '/html/registry/plugins.py', "READY = True\n");
my $r;
ok(wait_for(sub { $r = http_get('/one'); $r->{status} == 200 }, 30), 'fixing the package (not the app\'s file) fixes the app');
is($r->{body}, 'one ready=True', 'set up afresh, not refused as reentrant');
my $two = http_get('/two');
is($two->{status}, 200, 'the other app that imports the package works too');
is($two->{body}, 'two ready=True', 'with the fixed package');
unlike(error_log_text(), qr/isn't reentrant/, 'no half-initialised module was found again');

=== TEST 3: sys.stdout and sys.stderr are real text streams (bytes through .buffer, faulthandler on fd 2) whose lines reach the error log; sys.stdin reads as empty, embedded and in a pool
--- http_config
rust_pool s processes=1;
--- config
location /embedded { rust_wsgi $TEST_NGINX_APPS/stdio_app.py; }
location /pooled { rust_wsgi $TEST_NGINX_APPS/stdio_app.py pool=s; }
--- perl
for my $where (qw(embedded pooled)) {
    my $r = http_get("/$where");
    is($r->{status}, 200, "$where: the app imported (faulthandler.enable() found a fileno) and serves");
    is($r->{body}, "utf-8 backslashreplace True 2 1 ''", "$where: encoding, errors, a TextIOWrapper, fd 2, faulthandler on, stdin empty");
    is(http_get("/$where?dump")->{status}, 200, "$where: faulthandler dumped a traceback");
}
my $log = error_log_text();
like($log, qr/\[error\].*stdio: bytes at import/, 'bytes written at import are a log line');
like($log, qr/\[error\].*stdio: bytes while serving.*request: "GET \/embedded/, 'bytes while serving, in the request\'s context');
like($log, qr/\[error\].*stdio: text while serving.*request: "GET \/pooled/, 'print() from a pool app, in the request\'s context');
like($log, qr/Current thread 0x[0-9a-f]+ \(most recent call first\)/, 'faulthandler\'s output reached the error log through fd 2');

=== TEST 4: an app that imports lazily (LazyLoader, like Mercurial's demandimport) under concurrent first requests: all succeed, embedded (8 threads) and in a pool
--- http_config
rust_wsgi_threads 8;
rust_pool lazy processes=2 threads=4;
--- config
location /embedded { rust_wsgi $TEST_NGINX_APPS/lazyapp.py; }
location /pooled { rust_wsgi $TEST_NGINX_APPS/lazyapp.py pool=lazy; }
--- perl
# Lazy imports are not thread-safe (Python 3.11's LazyLoader lets a second
# thread see the module half-run): an app's first call in a process runs
# alone, so the burst below, which hits the module's first use, gets it
# whole. Without that, most of these requests failed.
for my $where (qw(embedded pooled)) {
    my @socks = map { http_start("GET /$where HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n") } 1 .. 20;
    my @answers = map { http_finish($_, timeout => 60) } @socks;
    is(scalar(grep { $_->{status} == 200 && $_->{body} eq 'value=42' } @answers), 20, "$where: every request got the lazily imported value");
}
