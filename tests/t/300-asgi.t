# rust_asgi: ASGI 3 apps on an asyncio loop in each worker.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use JSON::PP;
use Test::Gateway;

sub marks { my ($name) = @_; return Test::Gateway::slurp(servroot() . "/tmp/$name") // '' }

# Runs a tests/tools/upload_client.py scenario; returns its JSON result.
sub upload {
    my @args = @_;
    my $out = `'/usr/bin/python3' '$FindBin::Bin/../tools/upload_client.py' @{[server_port()]} @args 2>&1`;
    my ($json) = $out =~ /^(\{.*\})\s*\z/m;
    return $json ? JSON::PP::decode_json($json) : { error => $out };
}

sub write_app {
    my ($path, $body) = @_;
    open my $fh, '>', "$path.tmp" or die $!;
    print $fh "async def app(scope, receive, send):\n";
    print $fh "    if scope['type'] != 'http':\n        raise RuntimeError('http only')\n";
    print $fh "    await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n";
    print $fh "    await send({'type': 'http.response.body', 'body': b'$body'})\n";
    close $fh;
    chmod 0644, "$path.tmp";
    rename "$path.tmp", $path or die $!;
}

run_tests();

__DATA__

=== TEST 1: the scope is complete: root_path is the location, path the whole path, headers lowercased byte pairs
--- http_config
rust_python_env MARKS $TEST_NGINX_SERVROOT/tmp;
--- config
location /api/ {
    rust_asgi $TEST_NGINX_APPS/asgiraw.py:app;
}
--- perl
use JSON::PP;
my $r = http_get('/api/scope?a=1&b=%20', headers => "X-Custom-Thing: Yes\nCookie: a=1\nCookie: b=2");
is($r->{status}, 200, 'served');
my $s = decode_json($r->{body});
is($s->{type}, 'http', 'type');
is_deeply($s->{asgi}, { version => '3.0', spec_version => '2.5' }, 'asgi versions');
is($s->{http_version}, '1.1', 'http_version');
is($s->{method}, 'GET', 'method');
is($s->{scheme}, 'http', 'scheme');
is($s->{path}, '/api/scope', 'path includes root_path');
is($s->{root_path}, '/api', 'root_path is the location prefix');
is($s->{raw_path}, '/api/scope', 'raw_path');
is($s->{query_string}, 'a=1&b=%20', 'query_string, raw');
is_deeply($s->{client}, ['127.0.0.1', $s->{client}[1]], 'client address');
like($s->{client}[1], qr/^\d+$/, 'client port');
is_deeply($s->{server}, ['localhost', server_port()], 'server');
ok((grep { $_->[0] eq 'x-custom-thing' && $_->[1] eq 'Yes' } @{ $s->{headers} }), 'header names lowercased, values as sent');
is(scalar(grep { $_->[0] eq 'cookie' } @{ $s->{headers} }), 2, 'repeated headers stay separate pairs');
ok(exists $s->{extensions}{'http.response.pathsend'}, 'pathsend advertised');
ok(!exists $s->{extensions}{'http.response.trailers'}, 'trailers not advertised');
ok(!$s->{has_state}, 'no state without lifespan support');
like($s->{loop}, qr/^asyncio\./, "asyncio's own loop without uvloop installed ($s->{loop})");
$r = http_request("GET /api/sc%6Fpe HTTP/1.0\r\nHost: localhost\r\n\r\n");
$s = decode_json($r->{body});
is($s->{http_version}, '1.0', 'HTTP/1.0');
is($s->{path}, '/api/scope', 'path decoded');
is($s->{raw_path}, '/api/sc%6Fpe', 'raw_path as sent');
--- error_log
does not support the lifespan protocol


=== TEST 2: request bodies arrive as http.request events in pieces, with more_body; empty bodies as one event
--- config
location / {
    rust_asgi $TEST_NGINX_APPS/asgiraw.py:app;
}
--- perl
my $body = join '', map { chr(65 + $_ % 26) } 1 .. 300_000;
my $r = http_request(Test::Gateway::build_request("POST /echo\n$body"));
is($r->{status}, 200, 'served');
is(length $r->{body}, 300_000, 'whole body');
ok($r->{body} eq $body, 'intact');
cmp_ok($r->{headers}{'x-events'}[0], '>=', 4, "in $r->{headers}{'x-events'}[0] events");
$r = http_request(Test::Gateway::build_request("POST /echo\n"));
is($r->{headers}{'x-events'}[0], 1, 'an empty body is one event');
$r = http_request("POST /echo HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
is($r->{body}, 'hello world', 'a chunked body');
is($r->{headers}{'content-length'}[0], 11, 'a one-message response gets a Content-Length');


=== TEST 3: 1 GiB streamed in 64 KiB sends to a slower client: send() waits, worker peak RSS grows < 64 MiB
--- config
location / {
    rust_asgi $TEST_NGINX_APPS/asgiraw.py:app;
}
--- timeout: 120
--- perl
use Time::HiRes qw(sleep time);
http_get('/stream?4,10');    # warm
my ($worker) = worker_pids();
my $before = vm_hwm($worker);
my $s = http_start("GET /stream?16384,65536 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
my ($total, $buf, $t0) = (0, '', time);
sleep 1;    # not reading at all: without backpressure it would all be buffered by now
my $stalled = (vm_hwm($worker) - $before) / 1024;
while (1) {
    my $n = sysread($s, $buf, 1 << 20);
    last unless $n;
    $total += $n;
    sleep 0.005;
}
close $s;
my $growth = (vm_hwm($worker) - $before) / 1024;
cmp_ok($total, '>', 1 << 30, sprintf('1 GiB delivered in %.1f s', time - $t0));
cmp_ok($stalled, '<', 32, sprintf('RSS grew %.1f MiB while the client did not read', $stalled));
cmp_ok($growth, '<', 64, sprintf('peak RSS grew %.1f MiB', $growth));


=== TEST 4: a client that leaves: a send()ing app gets an OSError, a receive()ing one http.disconnect, after a complete response too
--- http_config
rust_python_env MARKS $TEST_NGINX_SERVROOT/tmp;
--- config
location / {
    rust_asgi $TEST_NGINX_APPS/asgiraw.py:app;
}
--- perl
use Time::HiRes qw(sleep);
my $s = http_start("GET /forever HTTP/1.1\r\nHost: localhost\r\n\r\n");
sysread($s, my $buf, 4096);
like($buf, qr/tick/, 'streaming');
close $s;
ok(wait_for(sub { main::marks('forever') =~ /send raised ClientDisconnected|cancelled/ }, 5), 'the streaming app learns the client left: ' . main::marks('forever'));
$s = http_start("POST /listen HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\n\r\nhi");
sleep 0.3;
close $s;
ok(wait_for(sub { main::marks('listen') =~ /http.disconnect/ }, 5), 'receive() returns http.disconnect');
is(http_get('/wait-disconnect')->{body}, 'waiting', 'a complete response');
ok(wait_for(sub { main::marks('disconnect') =~ /http.disconnect/ }, 5), 'then receive() returns http.disconnect');
is(http_get('/scope')->{status}, 200, 'the worker serves on');


=== TEST 5: app errors: 500 with the traceback before the head, a closed connection after it; bad messages are named
--- config
location / {
    rust_asgi $TEST_NGINX_APPS/asgiraw.py:app;
}
--- perl
my $r = http_get('/boom');
is($r->{status}, 500, 'exception before the response: 500');
$r = http_get('/late-boom');
is($r->{status}, 200, 'exception after the head: the head was sent');
unlike($r->{raw}, qr/\r\n0\r\n\r\n$/, 'and the chunked body is not terminated');
is(http_get('/no-response')->{status}, 500, 'returning without a response: 500');
$r = http_get('/unfinished');
unlike($r->{raw}, qr/\r\n0\r\n\r\n$/, 'returning with more_body still set: not terminated');
$r = http_get('/crlf');
is($r->{status}, 500, 'CR LF in a header value: 500');
ok(!exists $r->{headers}{injected}, 'and the response is not split');
is(http_get('/str-body')->{status}, 500, 'a str body: 500');
is(http_get('/bad-status')->{status}, 500, 'a bad status: 500');
is(http_get('/twice')->{status}, 500, 'http.response.start twice: 500');
is(http_get('/scope')->{status}, 200, 'the worker serves on');
--- error_log eval
[
  qr/rust_asgi: ".*asgiraw.py" raised an exception; traceback follows/,
  qr/ValueError: boom before the response/,
  qr/raised an exception after the response started \(the connection is closed\)/,
  qr/returned without sending a response/,
  qr/returned before finishing its response/,
  qr/invalid value for header "x-bad": contains CR or LF/,
  qr/the body must be a byte string, not str/,
  qr/invalid status 99/,
  qr/http.response.start was already sent/,
]


=== TEST 6: http.response.pathsend sends the file from nginx; a blocking call in an executor leaves the loop free
--- config
location / {
    rust_asgi $TEST_NGINX_APPS/asgiraw.py:app;
}
--- perl
use Time::HiRes qw(time);
my $r = http_get('/pathsend');
is($r->{status}, 200, 'served');
is($r->{body}, Test::Gateway::slurp(servroot() . '/apps/asgiraw.py'), 'the file');
is($r->{headers}{'content-length'}[0], length $r->{body}, 'with its length');
is(http_get('/sync-in-thread')->{body}, 'from a thread', 'run_in_executor');
my $slow = http_start("GET /sleep?2 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
my $t0 = time;
my $ok = 0;
$ok += http_get('/scope')->{status} == 200 for 1 .. 20;
my $fast = time - $t0;
is($ok, 20, 'other requests are served while one sleeps');
cmp_ok($fast, '<', 1.5, sprintf('twenty of them in %.2f s, not after the sleep', $fast));
is(http_finish($slow)->{body}, 'slept', 'and the sleeper finishes');


=== TEST 7: Starlette: routes, path params, JSON, url_for under the location, forms, uploads, files, background tasks, lifespan state
--- http_config
rust_python_home $TEST_NGINX_VENV;
rust_python_env MARKS $TEST_NGINX_SERVROOT/tmp;
--- config
location /star/ {
    rust_asgi $TEST_NGINX_APPS/starletteapp/app.py;
}
--- perl
use JSON::PP;
ok(wait_for(sub { main::marks('startup') =~ /started/ }, 10), 'the lifespan startup ran at worker start');
my $r = http_get('/star/');
is($r->{body}, 'starlette index', 'index');
$r = http_get('/star/items/42?q=x');
my $j = decode_json($r->{body});
is($j->{id}, 42, 'path parameter');
is($j->{q}, 'x', 'query parameter');
is($j->{root_path}, '/star', 'root_path');
is($j->{url}, 'http://localhost/star/items/7', 'url_for knows the mount point');
is($j->{greeting}, 'hello from lifespan', 'lifespan state reaches the request');
is($j->{loop}, 'uvloop', 'uvloop, installed in the venv, runs the loop');
is(http_get('/star/items/notanumber')->{status}, 404, 'routing 404');
my $form = Test::Gateway::build_request("POST /star/form\nname=Ada&lang=Python", "Content-Type: application/x-www-form-urlencoded");
$j = decode_json(http_request($form)->{body});
is_deeply($j, { name => 'Ada', lang => 'Python' }, 'urlencoded form');
my $payload = join '', map { chr($_ % 256) } 1 .. 200_000;
my $body = multipart('XyZ', title => 'upload', file => { filename => 'blob.bin', data => $payload });
$j = decode_json(http_request(Test::Gateway::build_request("POST /star/form\n$body", "Content-Type: multipart/form-data; boundary=XyZ"))->{body});
is($j->{title}, 'upload', 'multipart field');
is($j->{file}{filename}, 'blob.bin', 'upload filename');
is($j->{file}{size}, 200_000, 'upload size');
$r = http_get('/star/file');
is($r->{body}, Test::Gateway::slurp(servroot() . '/apps/starletteapp/payload.txt'), 'FileResponse');
is($r->{headers}{'content-length'}[0], 65537, 'with its Content-Length');
is(http_get('/star/background?token=t0k3n')->{body}, 'queued', 'response before the background task');
ok(wait_for(sub { main::marks('background') =~ /t0k3n/ }, 5), 'the background task ran');
nginx_command('-s', 'quit');
ok(nginx_wait_exit(10), 'nginx quits');
like(main::marks('shutdown'), qr/stopped/, 'the lifespan shutdown ran on quit');


=== TEST 8: Starlette's StreamingResponse reaches the client piece by piece, not at the end
--- http_config
rust_python_home $TEST_NGINX_VENV;
rust_python_env MARKS $TEST_NGINX_SERVROOT/tmp;
--- config
location / {
    rust_asgi $TEST_NGINX_APPS/starletteapp/app.py;
}
--- perl
# Each part after the first waits for the client to have read the one
# before (it asks /next then): a response held back to the end never
# gets past its first part. The 30 s are only a guard against that hang.
my $s = http_start("GET /stream?n=5&steps HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
my ($data, $seen) = ('', 0);
my $sel = IO::Select->new($s);
while ($seen < 5 && $sel->can_read(30)) {
    my $n = sysread($s, my $buf, 65536) or last;
    $data .= $buf;
    my $parts = () = $data =~ /part \d /g;
    for my $read ($seen .. $parts - 1) {
        is(http_get('/next')->{body}, 'next', "part $read read, the next asked for") if $read < 4;
    }
    $seen = $parts;
}
close $s;
my @parts = $data =~ /part (\d) /g;
is("@parts", '0 1 2 3 4', 'all parts, in order, each before the app made the next');


=== TEST 9: a failed lifespan startup is logged with its message; the location answers 500 until the code is fixed
--- setup
use File::Copy;
copy(servroot() . '/apps/asgilifespanfail.py', servroot() . '/html/app.py') or die $!;
--- config
location / {
    rust_asgi $TEST_NGINX_HTML_DIR/app.py:app;
}
--- perl
is(http_get('/')->{status}, 500, '500 while startup failed');
is(http_get('/')->{status}, 500, 'still');
main::write_app(servroot() . '/html/app.py', 'fixed');
ok(wait_for(sub { http_get('/')->{body} eq 'fixed' }, 5), 'the fixed code serves');
--- error_log eval
[
  qr/the app's lifespan startup failed; its requests answer 500 until its code changes:/,
  qr/the database is not there/,
  qr/the app's lifespan startup failed \(logged at start\); answering 500/,
]


=== TEST 10: the wrong directive for the app's protocol says which one to use
--- config
location /a {
    rust_asgi $TEST_NGINX_APPS/wsgiapp_for_asgi.py;
}
location /w {
    rust_wsgi $TEST_NGINX_APPS/asgiapp_for_wsgi.py;
}
--- perl
is(http_get('/a')->{status}, 500, 'a WSGI app under rust_asgi: 500');
is(http_get('/w')->{status}, 500, 'an ASGI app under rust_wsgi: 500');
--- error_log eval
[
  qr/"application" in .*wsgiapp_for_asgi.py is not an ASGI app \(it is not an async function\); a WSGI app is served with rust_wsgi instead of rust_asgi/,
  qr/"application" in .*asgiapp_for_wsgi.py is an ASGI app \(its call is a coroutine\); serve it with rust_asgi instead of rust_wsgi/,
]


=== TEST 11: changed code is picked up under load: every response 200 with the old or the new body, the new one within 2 s
--- setup
main::write_app(servroot() . '/html/app.py', 'v1');
--- config
location / {
    rust_asgi $TEST_NGINX_HTML_DIR/app.py:app;
}
--- perl
is(http_get('/')->{body}, 'v1', 'v1 at first');
my ($bad, $seen, $new_after) = changed_under_load(
    seconds => 5, change_after => 0.5, old => 'v1', new => 'v2',
    change => sub { main::write_app(servroot() . '/html/app.py', 'v2') },
);
is($bad, 0, 'every response was 200 with the old or the new body');
ok($new_after > 0 && $new_after < 2, sprintf('v2 served %.2f s after the change', $new_after));
--- error_log
rust_asgi: reloaded


=== TEST 12: configuration mistakes fail nginx -t with the fix
--- config
location / {
    rust_asgi $TEST_NGINX_APPS/nothere.py;
}
--- must_die
--- error_log eval
qr{"rust_asgi": app file ".*nothere.py" does not exist; give the path of the Python file that defines the ASGI callable in .*nginx.conf:\d+}


=== TEST 13: rust_asgi and rust_wsgi in one location fail nginx -t
--- config
location / {
    rust_wsgi $TEST_NGINX_APPS/hello.py;
    rust_asgi $TEST_NGINX_APPS/asgiraw.py:app;
}
--- must_die
--- error_log eval
qr{"rust_asgi" and "rust_wsgi" cannot serve the same location in .*nginx.conf:\d+}


=== TEST 14: rust_asgi_reload directory=: a changed module recycles the worker, after the lifespan shutdown ran
--- setup
File::Path::make_path(servroot() . "/html/pkgapp/pkg");
Test::Gateway::write_file(servroot() . '/html/pkgapp/pkg/__init__.py', '');
Test::Gateway::write_file(servroot() . '/html/pkgapp/pkg/greeting.py', "TEXT = b'asgi v1'\n");
Test::Gateway::write_file(servroot() . '/html/pkgapp/app.py', <<'PY');
import os
from pkg import greeting


async def app(scope, receive, send):
    if scope['type'] == 'lifespan':
        while True:
            event = await receive()
            if event['type'] == 'lifespan.shutdown':
                with open(os.environ['MARKS'] + '/shutdown', 'a') as f:
                    f.write('%d\n' % os.getpid())
                await send({'type': 'lifespan.shutdown.complete'})
                return
            await send({'type': 'lifespan.startup.complete'})
    await send({'type': 'http.response.start', 'status': 200, 'headers': [(b'x-pid', str(os.getpid()).encode())]})
    await send({'type': 'http.response.body', 'body': greeting.TEXT})
PY
system('chmod', '-R', 'a+rX', servroot() . '/html/pkgapp');
--- http_config
rust_python_env MARKS $TEST_NGINX_SERVROOT/tmp;
--- config
location / {
    rust_asgi $TEST_NGINX_HTML_DIR/pkgapp/app.py;
    rust_asgi_reload directory=$TEST_NGINX_HTML_DIR/pkgapp;
}
--- perl
my $r = http_get('/');
is($r->{body}, 'asgi v1', 'v1 at first');
my $old_pid = $r->{headers}{'x-pid'}[0];
Test::Gateway::write_file(servroot() . '/html/pkgapp/pkg/greeting.py', "TEXT = b'asgi v2'\n");
ok(wait_for(sub { $r = http_get('/'); $r->{body} eq 'asgi v2' }, 5), 'the new module is served');
isnt($r->{headers}{'x-pid'}[0], $old_pid, 'by a fresh worker');
like(main::marks('shutdown'), qr/^$old_pid$/m, 'the old worker ran the lifespan shutdown');


=== TEST 15: rust_asgi ... pool=: the same apps from a pool's processes, lifespan there too
--- http_config
rust_python_env MARKS $TEST_NGINX_SERVROOT/tmp;
rust_pool ap processes=1 home=$TEST_NGINX_VENV env=MARKS=$TEST_NGINX_SERVROOT/tmp;
--- config
location /raw/ {
    rust_asgi $TEST_NGINX_APPS/asgiraw.py:app pool=ap;
}
location /star/ {
    rust_asgi $TEST_NGINX_APPS/starletteapp/app.py pool=ap;
}
--- perl
use JSON::PP;
my $r = http_get('/raw/scope?x=1');
is($r->{status}, 200, 'served');
my $s = decode_json($r->{body});
is($s->{root_path}, '/raw', 'root_path is the location, as embedded');
is($s->{path}, '/raw/scope', 'path');
is($s->{query_string}, 'x=1', 'query_string');
my @pool = pool_pids();
is_deeply([$s->{pid}], \@pool, 'run by the pool process');
is($s->{loop}, 'uvloop', "on the pool's venv's uvloop");
$r = http_get('/raw/stream?64,65536');
is(length $r->{body}, 64 * 65536, 'a streamed 4 MiB response');
is(http_get('/raw/boom')->{status}, 500, 'an exception: 500');
my $body = 'z' x 200_000;
is(length http_request(Test::Gateway::build_request("POST /raw/echo\n$body"))->{body}, 200_000, 'a request body');
my $j = decode_json(http_get('/star/items/3')->{body});
is($j->{greeting}, 'hello from lifespan', "the lifespan ran in the pool process and its state reaches requests");
like(main::marks('startup'), qr/^started $pool[0]$/m, 'in that process');
my $s2 = http_start("GET /raw/forever HTTP/1.1\r\nHost: localhost\r\n\r\n");
sysread($s2, my $buf, 4096);
close $s2;
ok(wait_for(sub { main::marks('forever') =~ /send raised ClientDisconnected|cancelled/ }, 5), 'a client that leaves reaches the app in the pool: ' . main::marks('forever'));


=== TEST 16: rust_asgi_request_buffering off: the app gets the body as it arrives, chunked too; buffered, it waits for all of it
--- config
location / {
    rust_asgi $TEST_NGINX_APPS/asgiraw.py:app;
    rust_asgi_request_buffering off;
}
location /buffered/ {
    rust_asgi $TEST_NGINX_APPS/asgiraw.py:app;
}
--- perl
use IO::Select;
# Sends $first, waits for $expect in the response, sends $rest; returns
# what arrived before $rest went out, and everything.
my $exchange = sub {
    my ($uri, $headers, $first, $rest, $expect) = @_;
    my $s = http_start("POST $uri HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n$headers\r\n$first");
    my ($early, $sel) = ('', IO::Select->new($s));
    while ($sel->can_read(1.5)) {
        sysread($s, my $buf, 4096) or last;
        $early .= $buf;
        last if $early =~ $expect;
    }
    print $s $rest;
    my $all = $early;
    while ($sel->can_read(5)) { sysread($s, my $buf, 4096) or last; $all .= $buf }
    close $s;
    return ($early, $all);
};
my ($early, $all) = $exchange->('/progressive', "Content-Length: 20\r\n", '0123456789', 'abcdefghij', qr/got 10\b/);
like($early, qr/got 10\b/, 'unbuffered: the app answered the first 10 bytes before the rest was sent');
like($all, qr/got 20\b.*done 20/s, 'then the rest');
($early, $all) = $exchange->('/progressive', "Transfer-Encoding: chunked\r\n", "5\r\nhello\r\n", "6\r\n world\r\n0\r\n\r\n", qr/got 5\b/);
like($early, qr/got 5\b/, 'a chunked body, piece by piece');
like($all, qr/done 11/, 'all of it');
($early, $all) = $exchange->('/buffered/progressive', "Content-Length: 20\r\n", '0123456789', 'abcdefghij', qr/got/);
unlike($early, qr/got/, 'buffered (the default): nothing before the whole body is in');
like($all, qr/got 20\b.*done 20/s, 'then the whole body in one event');


=== TEST 17: unbuffered, an app that does not read yet holds nginx back: 64 MiB upload, worker memory bounded
--- config
client_max_body_size 100m;
location / {
    rust_asgi $TEST_NGINX_APPS/asgiraw.py:app;
    rust_asgi_request_buffering off;
}
--- timeout: 60
--- perl
http_get('/scope');    # warm
my ($worker) = worker_pids();
my $before = vm_hwm($worker);
my $size = 64 << 20;
my $s = http_start("POST /slowread?1 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: $size\r\n\r\n");
my $piece = 'u' x (1 << 20);
print $s $piece for 1 .. 64;
my $r = http_finish($s, timeout => 30);
is($r->{body}, $size, 'all 64 MiB reached the app');
my $growth = (vm_hwm($worker) - $before) / 1024;
cmp_ok($growth, '<', 32, sprintf('worker peak RSS grew %.1f MiB', $growth));


=== TEST 18: unbuffered uploads under faults: 30 of 32 MiB written as fast as the socket takes them never stall; clients that reset are noticed at once, by an app in receive() (http.disconnect) and one waiting elsewhere (cancelled), and the worker keeps no socket for them
--- http_config
rust_python_env MARKS $TEST_NGINX_SERVROOT/tmp;
--- config
client_max_body_size 100m;
location / {
    rust_asgi $TEST_NGINX_APPS/asgiraw.py:app;
    rust_asgi_request_buffering off;
}
--- perl
# Uploads read with receive() in a loop, every other one with pauses. A
# stalled one sits until its guard (upload_client.py's 60 s without
# progress, or the app's 60 s read timeout and a 504), and fails the block.
my $r = main::upload('stream', 30, 32, '/upload', '/upload?slow=4');
is($r->{done}, 30, 'all 30 uploads arrived whole') or diag(explain($r));
my ($fewest) = sort { $a <=> $b } @{ $r->{events} // [0] };
cmp_ok($fewest, '>=', 512, "as it arrived: at least 512 http.request events each (fewest $fewest)");
my ($worker) = worker_pids();
my $sockets = sub { scalar grep { (readlink($_) // '') =~ /^socket:/ } glob "/proc/$worker/fd/*" };
my $idle = $sockets->();
# Each client sends its head and what the socket takes of a 50 MiB body,
# then resets. The app reads with receive() in a loop, or (hold) takes one
# event, says so, and waits on something else, so nginx stops reading for
# it; those clients reset once the app holds and the socket is full.
# Unnoticed, a request would hold its socket until rust_asgi_read_timeout
# (60 s); the guards below are far shorter and only stop a failing block.
for my $case (['reset', '/upload?read', 'http.disconnect'], ['reset-held', '/upload?hold', 'cancelled']) {
    my ($scenario, $uri, $how) = @$case;
    unlink servroot() . '/tmp/upload';
    my $r = main::upload($scenario, 20, $uri);
    is(scalar @{ $r->{sent} // [] }, 20, "20 clients reset their uploads to $uri") or diag(explain($r));
    my $all_heard = sub {
        my $marks = main::marks('upload');
        my @started = $marks =~ /^start (\d+)$/mg;
        return @started && !grep { $marks !~ /^\Q$how\E $_$/m } @started;
    };
    ok(wait_for($all_heard, 20), "every app that started heard of it: $how") or diag(main::marks('upload'));
    ok(wait_for(sub { $sockets->() == $idle }, 20), 'the worker holds no socket for them') or diag($sockets->() . " sockets, $idle idle");
}
is(http_get('/scope')->{status}, 200, 'the worker serves on');
--- no_error_log
answering 504


=== TEST 19: unbuffered uploads over HTTP/2 (flow control instead of TCP), and chunked over HTTP/1.1, fast and slow readers: whole and in order
--- min_nginx: 1.25.1
--- config
http2 on;
client_max_body_size 100m;
location / {
    rust_asgi $TEST_NGINX_APPS/asgiraw.py:app;
    rust_asgi_request_buffering off;
}
--- perl
use Digest::SHA;
plan skip_all => 'curl is not installed' unless grep { -x "$_/curl" } split /:/, $ENV{PATH};
my $file = servroot() . '/tmp/upload.bin';
open my $fh, '>', $file or die $!;
# 32 MiB in which no two 4-byte words are alike.
for my $i (0 .. 31) {
    print $fh pack('N*', map { (($i << 18) + $_) * 2654435761 % 4294967291 } 0 .. (1 << 18) - 1);
}
close $fh;
my $want = (-s $file) . ' ' . Digest::SHA->new(256)->addfile($file)->hexdigest;
my $url = 'http://127.0.0.1:' . server_port() . '/upload';
for my $case (['--http2-prior-knowledge', ''], ['--http2-prior-knowledge', '?slow=4'], ['-H "Transfer-Encoding: chunked"', '?slow=2']) {
    my ($how, $query) = @$case;
    my $out = `curl -s -S -H "Expect:" $how -T '$file' '$url$query' 2>&1`;
    my ($got, $events) = $out =~ /^(\d+ [0-9a-f]{64}) (\d+)$/;
    is($got, $want, "$how$query: the whole body, in order") or diag($out);
    cmp_ok($events // 0, '>=', 512, "in many events ($events)");
}


=== TEST 20: rust_asgi_request_buffering off in a pool location: the app in the pool process gets the body as it arrives, and a large one is held back, not buffered
--- http_config
rust_pool ap processes=1 threads=2;
--- config
client_max_body_size 100m;
location / {
    rust_asgi $TEST_NGINX_APPS/asgiraw.py:app pool=ap;
    rust_asgi_request_buffering off;
}
--- perl
use IO::Select;
# Sends $first, waits (up to 30 s: only a guard) for $expect in the
# response, then sends $rest.
my $exchange = sub {
    my ($headers, $first, $rest, $expect) = @_;
    my $s = http_start("POST /progressive HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n$headers\r\n$first");
    my ($early, $sel) = ('', IO::Select->new($s));
    my $deadline = time + 30;
    while (time < $deadline && $early !~ $expect && $sel->can_read(1)) {
        sysread($s, my $buf, 4096) or last;
        $early .= $buf;
    }
    print $s $rest;
    my $all = $early;
    while ($sel->can_read(10)) { sysread($s, my $buf, 4096) or last; $all .= $buf }
    close $s;
    return ($early, $all);
};
my ($early, $all) = $exchange->("Content-Length: 20\r\n", '0123456789', 'abcdefghij', qr/got 10\b/);
like($early, qr/got 10\b/, 'the app in the pool answered the first 10 bytes before the rest was sent');
like($all, qr/got 20\b.*done 20/s, 'then the rest');
($early, $all) = $exchange->("Transfer-Encoding: chunked\r\n", "5\r\nhello\r\n", "6\r\n world\r\n0\r\n\r\n", qr/got 5\b/);
like($early, qr/got 5\b/, 'a chunked body, piece by piece');
like($all, qr/done 11/, 'all of it');

my ($pool_pid) = pool_pids();
my ($worker) = worker_pids();
my ($worker_before, $pool_before) = (vm_hwm($worker), vm_hwm($pool_pid));
my $size = 64 << 20;
my $s = http_start("POST /slowread?1 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: $size\r\n\r\n");
my $piece = 'u' x (1 << 20);
print $s $piece for 1 .. 64;
my $r = http_finish($s, timeout => 60);
is($r->{body}, $size, 'all 64 MiB reached the app, which read nothing for a second');
my $worker_growth = (vm_hwm($worker) - $worker_before) / 1024;
my $pool_growth = (vm_hwm($pool_pid) - $pool_before) / 1024;
cmp_ok($worker_growth, '<', 32, sprintf('nginx worker peak RSS grew %.1f MiB', $worker_growth));
cmp_ok($pool_growth, '<', 32, sprintf('pool process peak RSS grew %.1f MiB', $pool_growth));
--- no_error_log
[error]
