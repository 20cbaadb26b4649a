# rust_asgi WebSockets, driven by a real client (the websockets package).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use JSON::PP;
use Test::Gateway;

my $CLIENT = "$FindBin::Bin/../tools/ws_client.py";

# Runs a ws_client.py scenario; returns its JSON result.
sub ws {
    my @args = @_;
    my $python = venv() . '/bin/python';
    my $out = `'$python' '$CLIENT' @{[server_port()]} @args 2>&1`;
    my ($json) = $out =~ /^(\{.*\})\s*\z/ms;
    return $json ? decode_json((split /\n/, $json)[-1]) : { error => $out };
}

# The echo scenario and what it must show, embedded or through a pool.
sub echo_checks {
    my $r = ws('echo');
    is($r->{subprotocol}, 'superchat', 'the subprotocol the app chose');
    is($r->{x_accepted}, 'yes', 'the header the app added to the 101');
    is($r->{text}, 'hello', 'text echoed');
    is_deeply($r->{bytes}, [0, 1, 255], 'bytes echoed');
    ok($r->{big_ok}, 'a 1 MB message echoed');
    ok($r->{pong}, 'a ping answered by nginx');
    is($r->{close_code}, 4000, 'the app closed with its code');
    is($r->{close_reason}, 'as asked', 'and its reason') or diag(explain($r));
}

sub marks { my ($name) = @_; return Test::Gateway::slurp(servroot() . "/tmp/$name") // '' }

run_tests();

__DATA__

=== TEST 1: echo: subprotocol and headers on accept, text and bytes both ways, a 1 MB message, ping, a close code and reason
--- http_config
rust_python_env MARKS $TEST_NGINX_SERVROOT/tmp;
--- config
location / {
    rust_asgi $TEST_NGINX_APPS/asgiws.py;
}
--- perl
main::echo_checks();
is(http_get('/echo')->{body}, 'plain http', 'plain HTTP on the same location');
is(main::ws('client-close')->{text}, 'hello', 'another connection, which the client closes with a code and reason');
ok(wait_for(sub { main::marks('echo') =~ /disconnect 4321 client says bye/ }, 30), 'the app got websocket.disconnect with both (ASGI spec 2.5): ' . main::marks('echo'));


=== TEST 2: server push: messages the client never asked for, then a close with a code
--- config
location / {
    rust_asgi $TEST_NGINX_APPS/asgiws.py;
}
--- perl
my $r = main::ws('push', 20);
is(scalar @{ $r->{messages} // [] }, 20, 'twenty messages') or diag(explain($r));
is($r->{messages}[19], 'push 19', 'in order');
is($r->{close_code}, 4001, 'close code');
is($r->{close_reason}, 'bye', 'close reason');


=== TEST 3: a denied handshake gets 403; one whose Sec-WebSocket-Key is not base64 of 16 bytes (RFC 6455, 4.2.1), or that has none or two, 400 without reaching the app; no accept and a plain return gets 500; an exception closes with 1011
--- http_config
rust_python_env MARKS $TEST_NGINX_SERVROOT/tmp;
--- config
location / {
    rust_asgi $TEST_NGINX_APPS/asgiws.py;
}
--- perl
# Not base64; base64 of 15 and of 17 bytes; 16 bytes with stray bits; none;
# two valid ones.
my @bad = ('not-a-key', 'AAAAAAAAAAAAAAAAAAAA', 'dGhlIHNhbXBsZSBub25jZSE=', 'dGhlIHNhbXBsZSBub25jZR==', '-',
    'dGhlIHNhbXBsZSBub25jZQ==,dGhlIHNhbXBsZSBub25jZQ==');
my $r = main::ws('keys', '/echo', @bad);
is_deeply($r->{statuses}, [(400) x @bad], 'each gets 400') or diag(explain($r));
is(main::marks('connect'), '', 'the app was not called');
$r = main::ws('keys', '/echo', 'dGhlIHNhbXBsZSBub25jZQ==');
is_deeply($r->{statuses}, [101], "RFC 6455's example key is accepted") or diag(explain($r));
ok(wait_for(sub { main::marks('connect') eq "/echo\n" }, 10), 'and reaches the app');
is(main::ws('status', '/deny')->{status}, 403, 'websocket.close before accept: 403');
is(main::ws('status', '/noaccept')->{status}, 500, 'returning without accepting: 500');
is(main::ws('raise')->{close_code}, 1011, 'an exception after accept: close 1011');
is(main::ws('push', 2)->{close_code}, 4001, 'the worker serves on');
--- error_log eval
[
  qr/the app returned without accepting or closing the WebSocket/,
  qr/ValueError: broken websocket handler/,
]


=== TEST 4: a client that vanishes without a close frame: the app's receive() gets websocket.disconnect
--- http_config
rust_python_env MARKS $TEST_NGINX_SERVROOT/tmp;
--- config
location / {
    rust_asgi $TEST_NGINX_APPS/asgiws.py;
}
--- perl
is(main::ws('leave')->{text}, 'one', 'talked first');
ok(wait_for(sub { main::marks('echo') =~ /disconnect 1006/ }, 5), 'the app got websocket.disconnect 1006: ' . main::marks('echo'));


=== TEST 5: a message over the limit closes the connection with 1009
--- config
location / {
    rust_asgi $TEST_NGINX_APPS/asgiws.py;
}
--- perl
is(main::ws('too-big', 17 * 1024 * 1024)->{close_code}, 1009, 'message too big: 1009');


=== TEST 6: an idle WebSocket is closed after rust_asgi_read_timeout
--- config
location / {
    rust_asgi $TEST_NGINX_APPS/asgiws.py;
    rust_asgi_read_timeout 1s;
}
--- perl
use IO::Socket::INET;
use Time::HiRes qw(time);
my $s = http_start("GET /idle HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    . "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
my $t0 = time;
my $data = '';
while (sysread($s, my $buf, 4096)) { $data .= $buf }
like($data, qr{^HTTP/1.1 101 Switching Protocols\r\n}, "the handshake answered");
like($data, qr{Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=\r\n}i, 'the accept key of RFC 6455');
like($data, qr{\x88\x0e\x03\xe9idle timeout$}, 'then a close frame, 1001 "idle timeout"');
my $took = time - $t0;
ok($took > 0.8 && $took < 8, sprintf('after %.1f s', $took));


=== TEST 7: 500 idle WebSockets in one worker: all open, memory bounded, no thread each
--- config
location / {
    rust_asgi $TEST_NGINX_APPS/asgiws.py;
}
--- timeout: 60
--- perl
my ($worker) = worker_pids();
main::ws('push', 1);    # warm: Python and the app are loaded
my $before = vm_hwm($worker);
my $threads_before = () = glob "/proc/$worker/task/*";
my $python = venv() . '/bin/python';
open my $client, '-|', "sleep 4 | '$python' '$FindBin::Bin/../tools/ws_client.py' @{[server_port()]} many 500" or die $!;
my $first = <$client>;
like($first // '', qr/"open": 500/, '500 connections open');
my $during = vm_hwm($worker);
my $threads = () = glob "/proc/$worker/task/*";
my $rest = do { local $/; <$client> };
close $client;
my $growth = ($during - $before) / 1024;
cmp_ok($growth, '<', 64, sprintf('worker peak RSS grew %.1f MiB (%.0f KiB per connection)', $growth, ($during - $before) / 500));
is($threads, $threads_before, "no thread per connection ($threads threads)");
like($rest, qr/"closed": 500/, 'all closed cleanly');


=== TEST 8: FastAPI: pydantic models and validation, path, query and injected parameters, a WebSocket route
--- http_config
rust_python_home $TEST_NGINX_VENV;
--- config
location /api/ {
    rust_asgi $TEST_NGINX_APPS/fastapiapp/app.py;
}
--- perl
my $r = http_get('/api/items/5?q=x');
is($r->{status}, 200, 'served');
is_deeply(decode_json($r->{body}), { item_id => 5, q => 'x', currency => 'EUR' }, 'path, query and dependency');
$r = http_request(Test::Gateway::build_request(qq{POST /api/items\n{"name": "pen", "price": 1.5, "tags": ["a"]}}, "Content-Type: application/json"));
is_deeply(decode_json($r->{body}), { name => 'pen', total => 3, tags => ['a'] }, 'a pydantic model in and out');
$r = http_request(Test::Gateway::build_request(qq{POST /api/items\n{"name": "pen"}}, "Content-Type: application/json"));
is($r->{status}, 422, 'a validation error is 422');
like($r->{body}, qr/"price"/, 'naming the missing field');
is(http_get('/api/items/notanumber')->{status}, 422, 'a bad path parameter is 422');
is_deeply(main::ws('fastapi')->{reply}, { room => 'lobby', echo => 'hi' }, 'the WebSocket route');


=== TEST 9: nginx -s quit closes open WebSockets with 1001 at once, not after their idle timeout
--- config
location / {
    rust_asgi $TEST_NGINX_APPS/asgiws.py;
    rust_asgi_read_timeout 60s;
}
--- perl
use Time::HiRes qw(time);
my $python = venv() . '/bin/python';
open my $client, '-|', "'$python' '$FindBin::Bin/../tools/ws_client.py' @{[server_port()]} wait-close" or die $!;
like(scalar(<$client>) // '', qr/"open": 1/, 'a WebSocket is open');
my $t0 = time;
nginx_command('-s', 'quit');
my $r = decode_json(scalar(<$client>) // '{}');
close $client;
is($r->{close_code}, 1001, 'closed with 1001 (going away)');
is($r->{close_reason}, 'server shutting down', 'and a reason');
ok(nginx_wait_exit(10), 'nginx quits');
cmp_ok(time - $t0, '<', 5, sprintf('within %.1f s, not the 60 s idle timeout', time - $t0));


=== TEST 10: failing a WebSocket (1002, 1007, 1009) closes the TCP connection at once, while a close the app started waits (lingering_timeout) for the client's close frame
--- config
lingering_timeout 60s;
location / {
    rust_asgi $TEST_NGINX_APPS/asgiws.py;
}
--- perl
# The client never answers the failures' close frames; each connection must
# end while the normal close, started first, still waits for its answer
# (60 s here: by order, not by a clock the test reads).
my $r = main::ws('fail');
is($r->{normal}, 4000, 'the app closed one connection with 4000') or diag(explain($r));
my %want = ('unmasked' => 1002, 'reserved opcode' => 1002, 'invalid UTF-8' => 1007, 'too big' => 1009);
for my $f (@{ $r->{failed} // [] }) {
    is($f->{code}, $want{ $f->{case} }, "$f->{case}: close $want{ $f->{case} }");
    ok($f->{closed}, "$f->{case}: then the TCP connection closed without waiting for the client");
    ok($f->{normal_open}, "$f->{case}: before the normal close gave up waiting for the client");
}
is(scalar @{ $r->{failed} // [] }, 4, 'four failures') or diag(explain($r));
ok($r->{normal_closed}, 'the normal close ends once the client answers');
--- error_log
failing a WebSocket


=== TEST 11: permessage-deflate (RFC 7692): the websockets package negotiates it and round-trips big and many messages; with raw frames, the answer has server_no_context_takeover and the client's parameters, the server compresses with the window the client asked for, a compressed message in fragments with a ping between them is inflated, and bad compressed input fails the connection (a bomb with 1009, the rest with 1002)
--- config
location / {
    rust_asgi $TEST_NGINX_APPS/asgiws.py;
}
--- perl
my $r = main::ws('deflate-client');
like($r->{extensions} // '', qr/^permessage-deflate; server_no_context_takeover$/, 'the answer to the package\'s offer') or diag(explain($r));
is_deeply($r->{negotiated}, ['PerMessageDeflate'], 'the package uses it');
ok($r->{big_ok} && $r->{bytes_ok} && $r->{many_ok}, 'a 2.4 MB text, 256 kB of bytes and 50 small messages echoed');

$r = main::ws('deflate');
is($r->{status}, 101, 'raw handshake accepted');
is($r->{extensions}, 'permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=9',
    'the parameters agreed') or diag(explain($r));
is($r->{pong}, 'ping', 'the ping between the fragments answered');
my @echoes = @{ $r->{echoes} // [] };
is(scalar @echoes, 3, 'three echoes') or diag(explain($r));
ok((grep { $_->{same} } @echoes) == 3, 'each the message sent, inflated with a 9-bit window') or diag(explain($r));
ok($echoes[0]{compressed} && $echoes[0]{wire} * 4 < $echoes[0]{length}, "an 88 kB text went out compressed ($echoes[0]{wire} bytes)");
ok($echoes[1]{compressed}, 'the fragmented one too');
ok($echoes[2]{compressed} && $echoes[2]{opcode} == 2, 'and bytes that came uncompressed, as binary');
is_deeply($r->{failed}, { 'bomb' => 1009, 'corrupt' => 1002, 'rsv1 on a ping' => 1002, 'rsv1 on a continuation' => 1002 },
    'each failure closes with its code') or diag(explain($r));
is(main::ws('push', 2)->{close_code}, 4001, 'the worker serves on');
--- error_log eval
[
  qr/failing a WebSocket: permessage-deflate: message too big/,
  qr/failing a WebSocket: permessage-deflate: invalid compressed data/,
]


=== TEST 12: rust_asgi_websocket_compression off: the offer is declined, frames go uncompressed, and a compressed frame is a protocol error
--- config
location / {
    rust_asgi $TEST_NGINX_APPS/asgiws.py;
    rust_asgi_websocket_compression off;
}
--- perl
my $r = main::ws('deflate-off');
is($r->{status}, 101, 'accepted');
ok($r->{declined}, 'without Sec-WebSocket-Extensions') or diag(explain($r));
is_deeply($r->{echo}, [JSON::PP::false, JSON::PP::true], 'echoed uncompressed') or diag(explain($r));
is($r->{rsv1}, 1002, 'RSV1 set: 1002');
$r = main::ws('deflate-client');
is($r->{extensions}, undef, 'the websockets package gets no extension');
ok($r->{big_ok} && $r->{many_ok}, 'and echoes');


=== TEST 13: a WebSocket to an ASGI app in a pool: the same echo, push, close codes, denied and broken handshakes, a client that vanishes, and the app runs in the pool process
--- http_config
rust_pool ws processes=1 env=MARKS=$TEST_NGINX_SERVROOT/tmp;
--- config
location / {
    rust_asgi $TEST_NGINX_APPS/asgiws.py pool=ws;
}
location = /status { rust_pool_status; }
--- perl
# A handshake that finds no ready process gets 503 (it does not wait).
ok(wait_for(sub { decode_json(http_get('/status')->{body})->{pools}[0]{running} == 1 }, 30), 'the pool process is ready');
main::echo_checks();
is(main::ws('client-close')->{text}, 'hello', 'a connection the client closes with a code and reason');
ok(wait_for(sub { main::marks('echo') =~ /disconnect 4321 client says bye/ }, 30), 'the app in the pool got websocket.disconnect with both: ' . main::marks('echo'));
my $r = main::ws('push', 20);
is(scalar @{ $r->{messages} // [] }, 20, 'server push: twenty messages') or diag(explain($r));
is($r->{close_code}, 4001, 'then its close code');
is(main::ws('status', '/deny')->{status}, 403, 'websocket.close before accept: 403');
is(main::ws('status', '/noaccept')->{status}, 500, 'returning without accepting: 500');
is(main::ws('raise')->{close_code}, 1011, 'an exception after accept: close 1011');
is(main::ws('leave')->{text}, 'one', 'a client that talked first');
ok(wait_for(sub { main::marks('echo') =~ /disconnect 1006/ }, 30), 'then vanished: the app got websocket.disconnect 1006: ' . main::marks('echo'));
is(main::ws('too-big', 17 * 1024 * 1024)->{close_code}, 1009, 'a message over the limit: 1009');
my @pool = pool_pids();
ok(main::marks('connect') ne '', 'the app ran');
is(scalar @pool, 1, 'in the one pool process');
--- error_log eval
[
  qr/the app returned without accepting or closing the WebSocket/,
  qr/ValueError: broken websocket handler/,
]


=== TEST 14: the pool process of an open WebSocket dies: the client gets a close frame with 1011 at once, and the next WebSocket is served by its successor
--- http_config
rust_pool ws processes=1;
--- config
location / {
    rust_asgi $TEST_NGINX_APPS/asgiws.py pool=ws;
}
location = /status { rust_pool_status; }
--- perl
ok(wait_for(sub { decode_json(http_get('/status')->{body})->{pools}[0]{running} == 1 }, 30), 'the pool process is ready');
my $s = http_start("GET /idle HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    . "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
my $data = '';
while ($data !~ /\r\n\r\n/ && sysread($s, my $buf, 4096)) { $data .= $buf }
like($data, qr{^HTTP/1.1 101 Switching Protocols\r\n}, 'the handshake is answered by the app in the pool');
my ($pid) = pool_pids();
kill 'KILL', $pid;
while (sysread($s, my $buf, 4096)) { $data .= $buf }
like($data, qr{\x88\x10\x03\xf3internal error$}, 'the client gets a close frame, 1011 "internal error"');
ok(wait_for(sub { my $r = main::ws('echo'); ($r->{text} // '') eq 'hello' }, 30), 'a new WebSocket is served by the next process');
ok(!(grep { $_ == $pid } pool_pids()), 'which is another one');
--- error_log eval
qr/closed the WebSocket's connection/
