# Behaving like an nginx upstream: what works behind uwsgi_pass or
# fastcgi_pass works in every kind of rust_* location (embedded WSGI,
# ASGI, CGI, a pool). The app is tests/apps/upstream.py (WSGI and ASGI) and
# tests/cgi-bin/upstream.py (the same routes as a CGI program).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::Gateway;
use IO::Socket::INET;
use IO::Select;
use Time::HiRes qw(sleep time);
use MIME::Base64 ();

our @KINDS = qw(wsgi asgi cgi pool);

# Sends $raw on a fresh connection and reads until the server closes it.
sub raw_exchange {
    my ($raw) = @_;
    my $s = http_start($raw);
    my $sel = IO::Select->new($s);
    my $data = '';
    while ($sel->can_read(20)) {
        my $n = sysread($s, my $buf, 65536);
        last unless $n;
        $data .= $buf;
    }
    close $s;
    return $data;
}

# Splits what came back on one connection into responses, de-chunking each
# body: a response that ended early leaves bytes that do not parse as the
# next response.
sub responses {
    my ($data) = @_;
    my @out;
    while (length $data) {
        $data =~ s/\A(HTTP\/1\.1 (\d{3})[^\r]*\r\n(.*?)\r\n\r\n)//s or return (@out, { garbage => $data });
        my ($status, $headers) = ($2, $3);
        my $body = '';
        if ($headers =~ /^Transfer-Encoding: chunked/mi) {
            while ($data =~ s/\A([0-9a-fA-F]+)\r\n//) {
                my $size = hex $1;
                if ($size == 0) { $data =~ s/\A\r\n//; last }
                $body .= substr($data, 0, $size, '');
                $data =~ s/\A\r\n// or return (@out, { garbage => $data });
            }
        } elsif ($headers =~ /^Content-Length: (\d+)/mi) {
            $body = substr($data, 0, $1, '');
        } else {
            ($body, $data) = ($data, '');
        }
        push @out, { status => $status, headers => $headers, body => $body };
    }
    return @out;
}

sub keepalive_get {
    my (@paths) = @_;
    my $raw = '';
    for my $i (0 .. $#paths) {
        my $close = $i == $#paths ? "Connection: close\r\n" : '';
        $raw .= "GET $paths[$i] HTTP/1.1\r\nHost: localhost\r\n$close\r\n";
    }
    return responses(raw_exchange($raw));
}

sub slurp_file { my ($p) = @_; open my $fh, '<', $p or return undef; local $/; return <$fh> }

sub header_of {
    my ($headers, $name) = @_;
    my @values = $headers =~ /^\Q$name\E: ([^\r\n]*)/mgi;
    return join ', ', @values;
}

sub get {
    my ($path, @headers) = @_;
    return http_request("GET $path HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n" . join('', map { "$_\r\n" } @headers) . "\r\n");
}

# The same app behind each kind of location, at /wsgi/, /asgi/, /cgi/ and
# /pool/ (a pool called p).
our $LOCATIONS = <<'NGINX';
location /wsgi/ { rust_wsgi $TEST_NGINX_APPS/upstream.py; }
location /asgi/ { rust_asgi $TEST_NGINX_APPS/upstream.py; }
location /cgi/ { rust_cgi_pass $TEST_NGINX_SERVROOT/cgi-bin/upstream.py; }
location /pool/ { rust_wsgi $TEST_NGINX_APPS/upstream.py pool=p; }
NGINX

run_tests();

__DATA__

=== TEST 1: SSI includes each kind of location; the page goes on after each, on keep-alive
--- http_config
rust_pool p processes=1 threads=2;
--- config eval
$main::LOCATIONS . <<'NGINX'
location = /page.html { ssi on; root html; }
NGINX
--- user_files
>>> page.html
A<!--# include virtual="/wsgi/frag" -->B<!--# include virtual="/asgi/frag" -->C<!--# include virtual="/cgi/frag" -->D<!--# include virtual="/pool/frag" -->E
--- perl
my $want = "A[frag /wsgi/frag]B[frag /asgi/frag]C[frag /cgi/frag]D[frag /pool/frag]E\n";
my @r = main::keepalive_get('/page.html', '/page.html', '/wsgi/frag');
is(scalar @r, 3, 'three responses on one connection, nothing left over');
is($r[0]{body}, $want, 'the page goes on after each include');
is($r[1]{body}, $want, 'the second response is whole too');
is($r[2]{body}, '[frag /wsgi/frag]', 'and a plain request after them');
ok(!grep({ $_->{garbage} } @r), 'no stray bytes between responses');

=== TEST 1b: the same page over HTTP/2
--- min_nginx: 1.25.1
--- http_config
rust_pool p processes=1 threads=2;
--- config
http2 on;
location /wsgi/ { rust_wsgi $TEST_NGINX_APPS/upstream.py; }
location /asgi/ { rust_asgi $TEST_NGINX_APPS/upstream.py; }
location /cgi/ { rust_cgi_pass $TEST_NGINX_SERVROOT/cgi-bin/upstream.py; }
location /pool/ { rust_wsgi $TEST_NGINX_APPS/upstream.py pool=p; }
location = /page.html { ssi on; root html; }
--- user_files
>>> page.html
A<!--# include virtual="/wsgi/frag" -->B<!--# include virtual="/asgi/frag" -->C<!--# include virtual="/cgi/frag" -->D<!--# include virtual="/pool/frag" -->E
--- perl
my $want = "A[frag /wsgi/frag]B[frag /asgi/frag]C[frag /cgi/frag]D[frag /pool/frag]E\n";
my $port = server_port();
# (One request per curl: this curl fails the second request on a reused
# prior-knowledge connection, even for a static file.)
for my $i (1, 2) {
    my $out = `curl -s --http2-prior-knowledge http://127.0.0.1:$port/page.html 2>&1`;
    is($out, $want, "the whole page ($i)");
}
unlike(error_log_text(), qr/closed stream/, 'no output on a closed stream');

=== TEST 2: add_before_body and add_after_body, with rust_* locations around a static page and around a rust_* page
--- http_config
rust_pool p processes=1 threads=2;
--- config eval
$main::LOCATIONS . <<'NGINX'
location /static/ { root html; add_before_body /wsgi/frag; add_after_body /asgi/frag; }
location /around/ {
    rust_wsgi $TEST_NGINX_APPS/upstream.py;
    addition_types text/plain;
    add_before_body /cgi/frag;
    add_after_body /pool/frag;
}
NGINX
--- user_files
>>> static/page.html
PAGE
--- perl
my @r = main::keepalive_get('/static/page.html', '/around/frag', '/static/page.html');
is(scalar @r, 3, 'three whole responses on one connection');
is($r[0]{body}, "[frag /wsgi/frag]PAGE\n[frag /asgi/frag]", 'a static page between two app fragments');
is($r[1]{body}, "[frag /cgi/frag][frag /around/frag][frag /pool/frag]", 'an app page between a CGI and a pool fragment');
is($r[2]{body}, $r[0]{body}, 'and again');

=== TEST 3: auth_request to each kind of location: allow, deny with the app's WWW-Authenticate, auth_request_set
--- http_config
rust_pool p processes=1 threads=2;
--- config eval
$main::LOCATIONS . join '', map { <<"NGINX" } @main::KINDS
location = /private/$_ {
    auth_request /$_/auth;
    auth_request_set \$user \$rust_http_x_user;
    auth_request_set \$sent \$sent_http_x_user;
    auth_request_set \$auth_status \$rust_status;
    add_header X-Seen "\$user \$sent \$auth_status" always;
    root html;
    try_files /private.txt =404;
}
NGINX
--- user_files
>>> private.txt
private
--- perl
my $multi = `'${\ nginx_binary()}' -v 2>&1` !~ m{nginx/1\.22\.};
for my $kind (@main::KINDS) {
    my $ok = main::get("/private/$kind", 'X-Token: good');
    is($ok->{status}, 200, "$kind: allowed");
    is($ok->{body}, "private\n", "$kind: the protected content");
    is(join(',', @{ $ok->{headers}{'x-seen'} }), 'alice alice 200', "$kind: auth_request_set got the app's header and status");
    my $no = main::get("/private/$kind", 'X-Token: bad');
    is($no->{status}, 401, "$kind: denied");
    my $www = join(', ', @{ $no->{headers}{'www-authenticate'} // [] });
    if ($multi) {
        is($www, 'Basic realm="app", Bearer realm="app"', "$kind: both of the app's WWW-Authenticate reach the client");
    } else {
        is($www, 'Basic realm="app"', "$kind: the app's WWW-Authenticate reaches the client (nginx 1.22 copies one)");
    }
}

=== TEST 4: conditional requests get 304 from the app's ETag and Last-Modified, on every kind of location
--- http_config
rust_pool p processes=1 threads=2;
--- config eval
$main::LOCATIONS
--- perl
for my $kind (@main::KINDS) {
    my $full = main::get("/$kind/cached");
    is($full->{status}, 200, "$kind: 200 without conditions");
    is($full->{headers}{etag}[0], '"v1"', "$kind: the app's ETag");
    is($full->{headers}{'last-modified'}[0], 'Wed, 21 Oct 2015 07:28:00 GMT', "$kind: the app's Last-Modified, once");
    is(scalar @{ $full->{headers}{'last-modified'} }, 1, "$kind: Last-Modified is not doubled");
    my $etag = main::get("/$kind/cached", 'If-None-Match: "v1"');
    is($etag->{status}, 304, "$kind: If-None-Match with the app's ETag: 304");
    is($etag->{body}, '', "$kind: no body with the 304");
    my $date = main::get("/$kind/cached", 'If-Modified-Since: Wed, 21 Oct 2015 07:28:00 GMT');
    is($date->{status}, 304, "$kind: If-Modified-Since the app's Last-Modified: 304");
    my $other = main::get("/$kind/cached", 'If-None-Match: "v2"');
    is($other->{status}, 200, "$kind: another ETag: the full response");
    is($other->{body}, 'cached body', "$kind: with its body");
    my $failed = main::get("/$kind/cached", 'If-Match: "v2"');
    is($failed->{status}, 412, "$kind: If-Match with another ETag: 412");
}

=== TEST 5: ranges of file responses (single, several, suffix, unsatisfiable) and of responses that allow them
--- http_config
rust_pool p processes=1 threads=2;
--- config eval
$main::LOCATIONS
--- perl
my $data = join '', map { chr(97 + $_ % 26) } 0 .. 999;
# Files: embedded apps hand nginx the file itself.
for my $kind (qw(wsgi asgi)) {
    my $one = main::get("/$kind/file", 'Range: bytes=10-19');
    is($one->{status}, 206, "$kind file: one range");
    is($one->{body}, substr($data, 10, 10), "$kind file: its bytes");
    is($one->{headers}{'content-range'}[0], 'bytes 10-19/1000', "$kind file: Content-Range");
    my $suffix = main::get("/$kind/file", 'Range: bytes=-5');
    is($suffix->{body}, substr($data, -5), "$kind file: a suffix range");
    my $many = main::get("/$kind/file", 'Range: bytes=0-1,998-999');
    is($many->{status}, 206, "$kind file: two ranges");
    like($many->{headers}{'content-type'}[0], qr{^multipart/byteranges; boundary=}, "$kind file: multipart");
    like($many->{body}, qr{Content-Range: bytes 0-1/1000\r\n\r\nab\r\n.*Content-Range: bytes 998-999/1000\r\n\r\nkl\r\n}s, "$kind file: both parts");
    my $none = main::get("/$kind/file", 'Range: bytes=2000-');
    is($none->{status}, 416, "$kind file: unsatisfiable: 416");
    is($none->{headers}{'content-range'}[0], 'bytes */1000', "$kind file: with the length");
    my $if_range = main::get("/$kind/file", 'Range: bytes=0-0', 'If-Range: "old"');
    is($if_range->{status}, 200, "$kind file: a stale If-Range gets the whole file");
    is(length $if_range->{body}, 1000, "$kind file: all of it");
    is($if_range->{headers}{'accept-ranges'}[0], 'bytes', "$kind file: Accept-Ranges");
}
# A pool streams the file; a response whose app says Accept-Ranges: bytes
# gets one range at a time, like proxy_force_ranges.
for my $path ('/pool/file', map { "/$_/ranged" } @main::KINDS) {
    my $one = main::get($path, 'Range: bytes=100-104');
    is($one->{status}, 206, "$path: one range");
    is($one->{body}, substr($data, 100, 5), "$path: its bytes");
    my $suffix = main::get($path, 'Range: bytes=-3');
    is($suffix->{body}, substr($data, -3), "$path: a suffix");
    my $many = main::get($path, 'Range: bytes=0-1,5-6');
    is($many->{status}, 200, "$path: several ranges of a streamed body: the whole response");
    is($many->{body}, $data, "$path: all of it");
    my $none = main::get($path, 'Range: bytes=5000-');
    is($none->{status}, 416, "$path: unsatisfiable: 416");
}
my $plain = main::get('/wsgi/cached', 'Range: bytes=0-1');
is($plain->{status}, 200, 'a response that does not allow ranges is sent whole');

=== TEST 6: X-Accel-Redirect to a URI, with arguments, to a named location, and refused when unsafe
--- http_config
rust_pool p processes=1 threads=2;
--- config eval
$main::LOCATIONS . <<'NGINX'
location /protected/ { internal; root html; }
location /args { internal; return 200 "args=$args method=$request_method\n"; }
location @named { return 200 "named uri=$uri args=$args\n"; }
NGINX
--- user_files
>>> protected/secret.txt
the secret file
--- perl
for my $kind (@main::KINDS) {
    my $file = main::get("/$kind/accel?X-Accel-Redirect=/protected/secret.txt&Content-Disposition=attachment%3B+filename%3Ds.txt&X-Other=1");
    is($file->{status}, 200, "$kind: redirected to a protected file");
    is($file->{body}, "the secret file\n", "$kind: nginx serves the file, not the app's body");
    is($file->{headers}{'content-disposition'}[0], 'attachment; filename=s.txt', "$kind: the app's Content-Disposition stays");
    is($file->{headers}{'content-type'}[0], 'text/plain', "$kind: and its Content-Type");
    ok(!exists $file->{headers}{'x-accel-redirect'}, "$kind: X-Accel-Redirect never reaches the client");
    ok(!exists $file->{headers}{'x-other'}, "$kind: nor the app's other headers");
    my $args = http_request("POST /$kind/accel?X-Accel-Redirect=/args%3Fa%3D1%26b%3D2 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi");
    is($args->{body}, "args=a=1&b=2 method=GET\n", "$kind: to a URI with arguments, as GET");
    my $named = main::get("/$kind/accel?X-Accel-Redirect=%40named&k=v");
    is($named->{body}, "named uri=/$kind/accel args=X-Accel-Redirect=%40named&k=v\n", "$kind: to a named location, with the request's URI and arguments");
    my $unsafe = main::get("/$kind/accel?X-Accel-Redirect=/protected/../protected/secret.txt");
    is($unsafe->{status}, 404, "$kind: an unsafe URI: 404");
}
like(error_log_text(), qr/X-Accel-Redirect "\/protected\/\.\.\/protected\/secret\.txt" is not a safe URI/, 'and the log says why');

=== TEST 7: X-Accel-Limit-Rate, X-Accel-Charset and X-Accel-Expires act and stay hidden
--- http_config
rust_pool p processes=1 threads=2;
charset_map koi8-r utf-8 { C1 D0B0; }
--- config
location /wsgi/ { rust_wsgi $TEST_NGINX_APPS/upstream.py; add_header X-Rate $limit_rate; }
location /asgi/ { rust_asgi $TEST_NGINX_APPS/upstream.py; add_header X-Rate $limit_rate; }
location /cgi/ { rust_cgi_pass $TEST_NGINX_SERVROOT/cgi-bin/upstream.py; add_header X-Rate $limit_rate; }
location /pool/ { rust_wsgi $TEST_NGINX_APPS/upstream.py pool=p; add_header X-Rate $limit_rate; }
--- perl
for my $kind (@main::KINDS) {
    my $rate = main::get("/$kind/accel?X-Accel-Limit-Rate=123456&X-Accel-Expires=60");
    is($rate->{headers}{'x-rate'}[0], '123456', "$kind: X-Accel-Limit-Rate sets the request's limit_rate");
    is($rate->{body}, 'app body', "$kind: the app's body");
    ok(!exists $rate->{headers}{$_}, "$kind: no $_ header") for qw(x-accel-limit-rate x-accel-expires);
    my $koi8 = main::get("/$kind/koi8");
    is($koi8->{headers}{'content-type'}[0], 'text/html; charset=koi8-r', "$kind: X-Accel-Charset: the charset nginx recodes to");
    is($koi8->{body}, "\xC1", "$kind: the body recoded from utf-8");
    ok(!exists $koi8->{headers}{'x-accel-charset'}, "$kind: no X-Accel-Charset header");
}

=== TEST 8: X-Accel-Buffering: no sends each chunk at once; yes lets nginx gather them
--- http_config
rust_pool p processes=1 threads=2;
--- config eval
$main::LOCATIONS
--- perl
my $dir = servroot();
for my $kind (@main::KINDS) {
    for my $buffering (qw(no yes)) {
        my $flag = "$dir/release-$kind-$buffering";
        chmod 0777, $dir;
        my $s = http_start("GET /$kind/held?wait=$flag&X-Accel-Buffering=$buffering HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        my $sel = IO::Select->new($s);
        my $early = '';
        # The app holds its second chunk until the flag file exists. Unbuffered,
        # the first chunk must arrive while it waits (however long that takes
        # here); gathered, it must not arrive in this time, since nothing can
        # push it out before the app goes on.
        my $deadline = time + ($buffering eq 'no' ? 30 : 1);
        while ($early !~ /first/ && time < $deadline && $sel->can_read($deadline - time)) {
            sysread($s, my $buf, 65536) or last;
            $early .= $buf;
        }
        if ($buffering eq 'no') {
            like($early, qr/first\n/, "$kind: X-Accel-Buffering: no: the first chunk arrives while the app waits");
        } else {
            unlike($early, qr/first/, "$kind: X-Accel-Buffering: yes: nginx holds the small first chunk");
        }
        open my $fh, '>', $flag or die $!;
        close $fh;
        my $res = http_finish($s);
        like($early . $res->{raw}, qr/first\n.*second\n/s, "$kind ($buffering): the whole body in the end");
        unlike($early . $res->{raw}, qr/X-Accel-Buffering/i, "$kind ($buffering): the header stays hidden");
    }
}

=== TEST 9: rust_hide_header, rust_pass_header and rust_ignore_headers, inherited level by level
--- http_config
rust_pool p processes=1 threads=2;
rust_hide_header X-Secret;
--- config
location /wsgi/ { rust_wsgi $TEST_NGINX_APPS/upstream.py; }
location /asgi/ { rust_asgi $TEST_NGINX_APPS/upstream.py; rust_pass_header X-Accel-Buffering; }
location /cgi/ { rust_cgi_pass $TEST_NGINX_SERVROOT/cgi-bin/upstream.py; rust_hide_header X-Powered-By; }
location /pool/ {
    rust_wsgi $TEST_NGINX_APPS/upstream.py pool=p;
    rust_ignore_headers X-Accel-Redirect X-Accel-Limit-Rate;
    rust_pass_header X-Accel-Redirect;
    add_header X-Rate $limit_rate;
}
--- perl
my $q = 'X-Secret=s&X-Powered-By=p&X-Kept=k&X-Accel-Buffering=no';
my %r = map { $_ => main::get("/$_/accel?$q") } @main::KINDS;
is($r{wsgi}{headers}{'x-kept'}[0], 'k', 'other headers pass');
ok(!exists $r{wsgi}{headers}{'x-secret'}, 'rust_hide_header at http level hides');
is($r{wsgi}{headers}{'x-powered-by'}[0], 'p', 'a header hidden elsewhere passes here');
ok(!exists $r{wsgi}{headers}{'x-accel-buffering'}, 'X-Accel-* hidden by default');
is($r{asgi}{headers}{'x-accel-buffering'}[0], 'no', 'rust_pass_header passes a header hidden by default');
ok(!exists $r{asgi}{headers}{'x-secret'}, 'and the inherited rust_hide_header still hides');
ok(!exists $r{cgi}{headers}{'x-powered-by'}, 'a location-level rust_hide_header hides...');
is($r{cgi}{headers}{'x-secret'}[0], 's', '...and replaces the inherited list, as nginx does');
my $ignored = main::get('/pool/accel?X-Accel-Redirect=/elsewhere&X-Accel-Limit-Rate=100');
is($ignored->{status}, 200, 'rust_ignore_headers X-Accel-Redirect: no redirect');
is($ignored->{body}, 'app body', 'the app\'s own body');
is($ignored->{headers}{'x-accel-redirect'}[0], '/elsewhere', 'passed on with rust_pass_header');
is($ignored->{headers}{'x-rate'}[0], '0', 'an ignored X-Accel-Limit-Rate sets nothing');

=== TEST 10: an unknown header for rust_ignore_headers fails nginx -t, naming the choices
--- config
location /wsgi/ { rust_wsgi $TEST_NGINX_APPS/upstream.py; rust_ignore_headers X-Accel-Nothing; }
--- must_die
--- error_log
"rust_ignore_headers": unknown header "X-Accel-Nothing"; use any of X-Accel-Redirect, X-Accel-Expires

=== TEST 11: REMOTE_USER and AUTH_TYPE after auth_basic, and rust_param, in every kind of location
--- http_config
rust_pool p processes=1 threads=2;
--- config
auth_basic "area";
auth_basic_user_file $TEST_NGINX_HTML_DIR/htpasswd;
rust_param SSL_CLIENT_S_DN "CN=$arg_who";
rust_param HTTPS on;
rust_param EMPTY $arg_none if_not_empty;
location /wsgi/ { rust_wsgi $TEST_NGINX_APPS/upstream.py; }
location /asgi/ { rust_asgi $TEST_NGINX_APPS/upstream.py; }
location /cgi/ { rust_cgi_pass $TEST_NGINX_SERVROOT/cgi-bin/upstream.py; }
location /pool/ { rust_wsgi $TEST_NGINX_APPS/upstream.py pool=p; }
location /own/ { rust_wsgi $TEST_NGINX_APPS/upstream.py; rust_param ONLY_HERE 1; }
--- user_files
>>> htpasswd
alice:{PLAIN}secret
--- perl
use JSON::PP;
my $auth = 'Authorization: Basic ' . MIME::Base64::encode_base64('alice:secret', '');
for my $kind (@main::KINDS) {
    my $r = main::get("/$kind/env?who=alice", $auth);
    is($r->{status}, 200, "$kind: authenticated");
    my $env = decode_json($r->{body});
    is($env->{REMOTE_USER}, 'alice', "$kind: REMOTE_USER");
    is($env->{AUTH_TYPE}, 'Basic', "$kind: AUTH_TYPE");
    is($env->{SSL_CLIENT_S_DN}, 'CN=alice', "$kind: rust_param from a variable");
    is($env->{HTTPS}, 'on', "$kind: rust_param");
    ok(!exists $env->{EMPTY}, "$kind: if_not_empty leaves an empty one out");
    is(main::get("/$kind/env")->{status}, 401, "$kind: without credentials: 401");
}
my $own = decode_json(main::get('/own/env', $auth)->{body});
is($own->{ONLY_HERE}, '1', 'a location with its own rust_param...');
ok(!exists $own->{SSL_CLIENT_S_DN}, '...does not inherit the others, like uwsgi_param');

=== TEST 12: every $rust_* variable in an access log line, after plain responses, a 304 and an X-Accel-Redirect
--- http_config
rust_pool p processes=1 threads=2;
log_format rust '$uri|$status|$rust_status|$rust_app|$rust_pool|$rust_pid|$rust_queue_time|$rust_header_time|$rust_app_time|$rust_http_x_user|$rust_http_x_accel_redirect';
--- config
access_log logs/rust.log rust;
location /wsgi/ { rust_wsgi $TEST_NGINX_APPS/upstream.py; add_header X-App $rust_app; }
location /asgi/ { rust_asgi $TEST_NGINX_APPS/upstream.py:app; }
location /cgi/ { rust_cgi_pass $TEST_NGINX_SERVROOT/cgi-bin/upstream.py; }
location /pool/ { rust_wsgi $TEST_NGINX_APPS/upstream.py pool=p; }
location /protected/ { internal; root html; }
--- user_files
>>> protected/secret.txt
secret
--- perl
my $apps = servroot() . '/apps';
is(main::get('/wsgi/frag')->{headers}{'x-app'}[0], "$apps/upstream.py", 'add_header $rust_app');
main::get("/$_/auth", 'X-Token: good') for @main::KINDS;
main::get('/wsgi/cached', 'If-None-Match: "v1"');
main::get('/pool/accel?X-Accel-Redirect=/protected/secret.txt');
ok(wait_for(sub { (() = main::slurp_log() =~ /\n/g) >= 6 }, 10), 'six lines logged');
my %line;
for (split /\n/, main::slurp_log()) {
    my @f = split /\|/, $_, -1;
    $line{$f[0]} = \@f;
}
my ($worker) = worker_pids();
my @pool = pool_pids();
for my $kind (@main::KINDS) {
    my $f = $line{"/$kind/auth"} or do { fail("$kind: a line"); next };
    is($f->[1], 200, "$kind: \$status");
    is($f->[2], 200, "$kind: \$rust_status");
    my $app = $kind eq 'cgi' ? servroot() . '/cgi-bin/upstream.py' : $kind eq 'asgi' ? "$apps/upstream.py:app" : "$apps/upstream.py";
    is($f->[3], $app, "$kind: \$rust_app");
    is($f->[4], $kind eq 'pool' ? 'p' : '', "$kind: \$rust_pool");
    if ($kind eq 'pool') {
        ok((grep { $_ == $f->[5] } @pool), "pool: \$rust_pid is a pool process ($f->[5])");
    } elsif ($kind eq 'cgi') {
        ok($f->[5] =~ /^\d+$/ && $f->[5] != $worker, "cgi: \$rust_pid is the program's ($f->[5])");
    } else {
        is($f->[5], $worker, "$kind: \$rust_pid is the worker");
    }
    like($f->[$_], qr/^\d+\.\d{3}$/, "$kind: time $_ in seconds") for 6 .. 8;
    ok($f->[6] <= $f->[7] && $f->[7] <= $f->[8], "$kind: queued <= head <= end");
    is($f->[9], 'alice', "$kind: \$rust_http_x_user");
}
my $not_modified = $line{'/wsgi/cached'};
is("$not_modified->[1] $not_modified->[2]", '304 200', 'a 304 from nginx: $status 304, $rust_status the app\'s 200');
my $redirected = $line{'/protected/secret.txt'};
ok($redirected, 'the redirected request is logged under its new URI');
is($redirected->[3], "$apps/upstream.py", 'after X-Accel-Redirect, $rust_app is the app that redirected');
is($redirected->[10], '/protected/secret.txt', '$rust_http_x_accel_redirect has the hidden header');
sub main::slurp_log { open my $fh, '<', servroot() . '/logs/rust.log' or return ''; local $/; <$fh> }

=== TEST 13: nginx started from a shell substitution returns at once with a pool, and the supervisor holds no terminal
--- http_config
rust_pool p processes=1 threads=2;
--- config
location /pool/ { rust_wsgi $TEST_NGINX_APPS/upstream.py pool=p; }
--- perl
# A second nginx, daemonized as in production, from $(...): the command
# substitution ends when every holder of its stdout is gone.
my $root = servroot();
# A port nothing is bound to: the kernel picks it.
my $port = do { my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1:0', Listen => 1) or die $!; $s->sockport };
my $conf = do { open my $fh, '<', "$root/conf/nginx.conf" or die $!; local $/; <$fh> };
$conf =~ s/daemon off;/daemon on;/;
$conf =~ s/listen 127\.0\.0\.1:\d+/listen 127.0.0.1:$port/;
$conf =~ s{pid logs/nginx\.pid;}{pid logs/daemon.pid;};
open my $fh, '>', "$root/conf/daemon.conf" or die $!;
print $fh $conf;
close $fh;
my $bin = nginx_binary();
# The guard only ends a hang (the bug); it never decides a pass.
my $out = `timeout 120 sh -c 'out=\$("$bin" -p "$root/" -c conf/daemon.conf 2>&1); echo "rc=\$? [\$out]"'`;
like($out, qr/^rc=0 \[\]/, 'the command substitution ended, nginx exited 0 with nothing on its stdout');
my $pid = do { local @ARGV = "$root/logs/daemon.pid"; <> } // '';
chomp $pid;
ok($pid, 'the daemon runs');
# The supervisor is one of the daemon's own processes: forked after nginx
# detached, in its session, with nothing of the launcher's.
my @sups;
ok(wait_for(sub { @sups = grep { (main::slurp_file("/proc/$_/cmdline") // '') =~ /rust pool supervisor/ } children_of($pid); @sups == 1 }, 30),
    'the daemon\'s master has its pool supervisor');
my $session = sub { my ($p) = @_; my $stat = main::slurp_file("/proc/$p/stat") // ''; (split ' ', ($stat =~ /\)\s(.*)/)[0] // '')[3] };
for my $s (@sups) {
    is($session->($s), $session->($pid), 'the supervisor is in the daemon\'s session');
    isnt($session->($s), $session->($$), 'not the launcher\'s');
    is(readlink("/proc/$s/fd/$_"), '/dev/null', "its fd $_ is /dev/null") for 0, 1;
}
ok(wait_for(sub { http_request("GET /pool/frag HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")->{status} == 200 }, 30), 'the block\'s own nginx serves the pool');
my $daemon = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port") ? 1 : 0;
ok($daemon, 'the daemon listens');
system("'$bin' -p '$root/' -c conf/daemon.conf -s stop 2>/dev/null");
ok(wait_for(sub { !kill(0, $pid) && !grep { kill 0, $_ } @sups }, 30), 'stopped: the daemon and its supervisor are gone');
# Whatever happened above, leave nothing running.
kill 'KILL', grep { $_ } $pid, @sups;
