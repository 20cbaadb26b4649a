# Real frameworks from the test virtualenv, driven through nginx.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::Gateway;

sub cookies_of {
    my ($r) = @_;
    return join '; ', map { (split /;/, $_)[0] } @{ $r->{headers}{'set-cookie'} // [] };
}

sub make_django_site {
    my $venv = venv();
    my $html = servroot() . '/html';
    my $db = servroot() . '/tmp/db.sqlite3';
    mkdir "$html/mysite";
    system("$venv/bin/django-admin", 'startproject', 'mysite', "$html/mysite") == 0 or die 'startproject failed';
    my $settings = "$html/mysite/mysite/settings.py";
    open my $in, '<', $settings or die $!;
    my $text = do { local $/; <$in> };
    close $in;
    $text =~ s/^DEBUG = True/DEBUG = False/m;
    $text =~ s/^ALLOWED_HOSTS = \[\]/ALLOWED_HOSTS = ["localhost"]/m;
    $text =~ s/(["'])NAME\1: BASE_DIR \/ (["'])db.sqlite3\2/"NAME": "$db"/ or die 'cannot move the database';
    $text .= "\nSTATIC_ROOT = '$html/static'\n";
    # Django's own error reports go to stderr, which nginx points at error.log.
    $text .= "LOGGING = {'version': 1, 'disable_existing_loggers': False, 'handlers': {'stderr': {'class': 'logging.StreamHandler'}}, "
           . "'root': {'handlers': ['stderr'], 'level': 'WARNING'}}\n";
    open my $out, '>', $settings or die $!;
    print $out $text;
    close $out;
    local $ENV{DJANGO_SUPERUSER_PASSWORD} = 's3cret-pass';
    for my $cmd (['migrate', '--noinput'], ['createsuperuser', '--noinput', '--username', 'admin', '--email', 'admin@example.com'],
                 ['collectstatic', '--noinput']) {
        system("cd $html/mysite && $venv/bin/python manage.py @$cmd >/dev/null") == 0 or die "manage.py @$cmd failed";
    }
    chmod 0666, $db;
    system('chmod', '-R', 'a+rX', $html);
}

sub check_django {
    my $r = http_get('/admin/login/?next=/admin/');
    is($r->{status}, 200, 'login page');
    like($r->{body}, qr/Django administration/, 'rendered by Django');
    my $cookies = main::cookies_of($r);
    like($cookies, qr/csrftoken=/, 'CSRF cookie');
    my ($token) = $r->{body} =~ /name="csrfmiddlewaretoken" value="([^"]+)"/;
    ok($token, 'CSRF token in the form');

    my $form = "csrfmiddlewaretoken=$token&username=admin&password=s3cret-pass&next=%2Fadmin%2F";
    $r = http_request("POST /admin/login/?next=/admin/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
        . "Cookie: $cookies\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        . "Content-Length: " . length($form) . "\r\n\r\n$form");
    is($r->{status}, 302, 'login accepted');
    is($r->{headers}{location}[0], '/admin/', 'redirected to the admin');
    my $session = main::cookies_of($r);
    like($session, qr/sessionid=/, 'session cookie');

    $r = http_get('/admin/', headers => "Cookie: $session");
    is($r->{status}, 200, 'admin index');
    like($r->{body}, qr/Site administration/, 'logged in');

    $r = http_request("POST /admin/login/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
        . "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 29\r\n\r\nusername=admin&password=wrong");
    is($r->{status}, 403, 'a POST without the CSRF token is refused by Django');

    $r = http_get('/static/admin/css/base.css');
    is($r->{status}, 200, 'static file');
    like($r->{headers}{'content-type'}[0], qr{text/css}, 'served by nginx as CSS');
    ok(!$r->{headers}{'x-frame-options'}, 'not through Django (no X-Frame-Options)');
}

run_tests();

__DATA__

=== TEST 1: Flask: routes, JSON, SCRIPT_NAME-aware URLs, forms, uploads, cookies, sessions, redirects, streaming, send_file
--- http_config
rust_python_home $TEST_NGINX_VENV;
client_max_body_size 10m;
--- config
location /flask/ {
    rust_wsgi $TEST_NGINX_APPS/flaskapp/app.py;
}
--- perl
use Digest::SHA qw(sha256_hex);
my $r = http_get('/flask/');
is($r->{body}, 'flask index', 'index');

$r = http_get('/flask/json?x=1');
like($r->{body}, qr/"script_root":\s*"\/flask"/, 'request.script_root is the location');
like($r->{body}, qr/"path":\s*"\/json"/, 'request.path is the rest');
like($r->{body}, qr/"x":\s*"1"/, 'query arguments');
is($r->{headers}{'content-type'}[0], 'application/json', 'JSON content type');

my $form = 'name=' . 'W%C3%BCrfel' . '&lang=de';
$r = http_request("POST /flask/form HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
    . "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: " . length($form) . "\r\n\r\n$form");
is($r->{body}, "hello W\xc3\xbcrfel (de)", 'form POST, UTF-8 decoded');

my $data = join '', map { chr(($_ * 31) % 256) } 1 .. 300_000;
my $body = multipart('XyZ', note => { data => 'a note' }, file => { filename => 'up.bin', data => $data });
$r = http_request("POST /flask/upload HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
    . "Content-Type: multipart/form-data; boundary=XyZ\r\nContent-Length: " . length($body) . "\r\n\r\n$body");
like($r->{body}, qr/"size":\s*300000/, 'multipart upload size');
like($r->{body}, qr/"sha256":\s*"@{[sha256_hex($data)]}"/, 'multipart upload content');
like($r->{body}, qr/"filename":\s*"up.bin"/, 'file name');
like($r->{body}, qr/"note":\s*"a note"/, 'form field beside the file');

$r = http_get('/flask/session/set/abc');
my $cookies = main::cookies_of($r);
like($cookies, qr/session=/, 'session cookie set');
like($cookies, qr/plain=cookie-value/, 'plain cookie set');
$r = http_get('/flask/session/get', headers => "Cookie: $cookies");
is($r->{body}, 'abc/cookie-value', 'session and cookie read back');

$r = http_get('/flask/redirect');
is($r->{status}, 302, 'redirect status');
like($r->{headers}{location}[0], qr{^(http://localhost(:\d+)?)?/flask/$}, 'redirect to the mounted index');

$r = http_get('/flask/stream');
is($r->{body}, join('', map { "part $_\n" } 0 .. 4), 'streamed response');
ok($r->{headers}{'transfer-encoding'}, 'sent chunked');

open my $fh, '<', servroot() . '/apps/flaskapp/payload.bin' or die $!;
binmode $fh;
my $payload = do { local $/; <$fh> };
$r = http_get('/flask/file');
ok($r->{body} eq $payload, 'send_file content');
is($r->{headers}{'content-length'}[0], length $payload, 'send_file length');
$r = http_get('/flask/file', headers => "Range: bytes=1000-1999");
is($r->{status}, 206, 'a range request');
ok($r->{body} eq substr($payload, 1000, 1000), 'the requested range, from the file');
--- no_error_log
[error]


=== TEST 2: Django: admin login page, CSRF-protected login POST, static files served by nginx
--- setup
main::make_django_site();
--- http_config
rust_python_home $TEST_NGINX_VENV;
rust_python_path $TEST_NGINX_HTML_DIR/mysite;
rust_python_env DJANGO_SETTINGS_MODULE mysite.settings;
--- config
location /static/ {
    alias $TEST_NGINX_HTML_DIR/static/;
    types { text/css css; application/javascript js; }
}
location / {
    rust_wsgi $TEST_NGINX_HTML_DIR/mysite/mysite/wsgi.py;
}
--- perl
main::check_django();
--- timeout: 30


=== TEST 3: Django from a pool: the same checks, the app in a pool process
--- setup
main::make_django_site();
--- http_config
rust_python_home $TEST_NGINX_VENV;
rust_python_path $TEST_NGINX_HTML_DIR/mysite;
rust_python_env DJANGO_SETTINGS_MODULE mysite.settings;
rust_pool django processes=1;
--- config
location /static/ {
    alias $TEST_NGINX_HTML_DIR/static/;
    types { text/css css; application/javascript js; }
}
location / {
    rust_wsgi $TEST_NGINX_HTML_DIR/mysite/mysite/wsgi.py pool=django;
}
--- perl
main::check_django();
--- timeout: 30
