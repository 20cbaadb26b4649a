# rust_pool ... listen= allow=: a program pool also takes FastCGI
# connections on a TCP address, so that a stock nginx (a second instance
# here, without the module) reaches it with plain fastcgi_pass, and only
# from the addresses it allows.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::Gateway;
use JSON::PP;

# Starts a stock nginx (no load_module) serving $locations on port $port,
# with the module's pool at 127.0.0.1:$upstream_port behind fastcgi_pass.
sub start_stock {
    my ($port, $upstream_port, $locations, $root) = @_;
    $root //= servroot() . '/html/www';
    stock_nginx_start(<<"HTTP");
    client_max_body_size 20m;
    upstream apphosts {
        server 127.0.0.1:$upstream_port;
        keepalive 4;
    }
    server {
        listen 127.0.0.1:$port;
        root $root;
        fastcgi_param SCRIPT_FILENAME \$document_root\$fastcgi_script_name;
        fastcgi_param QUERY_STRING \$query_string;
        fastcgi_param REQUEST_METHOD \$request_method;
        fastcgi_param CONTENT_TYPE \$content_type;
        fastcgi_param CONTENT_LENGTH \$content_length;
        fastcgi_param SCRIPT_NAME \$fastcgi_script_name;
        fastcgi_param REQUEST_URI \$request_uri;
        fastcgi_param REMOTE_ADDR \$remote_addr;
        fastcgi_param REDIRECT_STATUS 200;
$locations
    }
HTTP
}

sub stock_get {
    my ($port, $path, %opt) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port") or die "connect: $!";
    my $body = $opt{body};
    my $req = ($body ? 'POST' : 'GET') . " $path HTTP/1.1\r\nHost: stock\r\nConnection: close\r\n";
    $req .= "Content-Length: " . length($body) . "\r\n" if $body;
    print $s "$req\r\n" . ($body // '');
    local $/;
    my $raw = <$s>;
    my ($head, $content) = split /\r\n\r\n/, $raw, 2;
    my ($status) = $head =~ m{^HTTP/1\.\d (\d+)};
    if ($head =~ /Transfer-Encoding: chunked/i) {
        my $decoded = '';
        while ($content =~ s/^([0-9a-f]+)\r\n//i) {
            my $n = hex $1;
            last if $n == 0;
            $decoded .= substr($content, 0, $n, '');
            $content =~ s/^\r\n//;
        }
        $content = $decoded;
    }
    return { status => $status, body => $content };
}

sub status { return decode_json(http_get('/status')->{body}) }

run_tests();

__DATA__

=== TEST 1: a stock nginx reaches the pool with fastcgi_pass over TCP (kept-alive connections, bodies), and an address outside allow= is refused
--- user_files
>>> www/hello.php
<?php echo "hello ", getmypid(), " ", $_SERVER['REQUEST_METHOD'], " ", $_GET['n'] ?? '', "\n";
>>> www/body.php
<?php echo hash('sha256', file_get_contents('php://input')), " ", $_SERVER['CONTENT_LENGTH'], "\n";
--- http_config
rust_pool php program=/usr/bin/php-cgi processes=2 env=PHP_FCGI_MAX_REQUESTS=0 listen=127.0.0.1:$TEST_NGINX_PORT2 allow=127.0.0.1;
--- config
location = /status { rust_pool_status; }
location = /stub { stub_status; }
--- perl
use Digest::SHA qw(sha256_hex);
my $port = Test::Gateway::free_port();
my $upstream = Test::Gateway::expand('$TEST_NGINX_PORT2');
main::start_stock($port, $upstream, <<'LOC' =~ s/UPSTREAM/$upstream/r);
        location ~ \.php$ {
            fastcgi_keep_conn on;
            fastcgi_pass apphosts;
        }
        location /refused/ {
            rewrite ^/refused(/.*)$ $1 break;
            fastcgi_param SCRIPT_FILENAME $document_root/hello.php;
            fastcgi_bind 127.0.0.2;
            fastcgi_pass 127.0.0.1:UPSTREAM;
        }
LOC
my @pids;
for my $n (1 .. 6) {
    my $r = main::stock_get($port, "/hello.php?n=$n");
    is($r->{status}, 200, "request $n through the stock nginx is served");
    like($r->{body}, qr/^hello (\d+) GET $n$/, 'by php-cgi');
    push @pids, $r->{body} =~ /^hello (\d+)/;
}
my %pool = map { $_ => 1 } Test::Gateway::pool_pids();
ok(!(grep { !$pool{$_} } @pids), 'every answer came from a process of the module\'s pool');
my $data = join '', map { chr(($_ * 31) % 256) } 1 .. 1_000_000;
my $r = main::stock_get($port, '/body.php', body => $data);
is($r->{status}, 200, 'a 1 MB body through fastcgi_pass');
is($r->{body}, sha256_hex($data) . " 1000000\n", 'arrives whole');
my $status = main::status();
my $served = 0;
$served += $_->{requests} for @{ $status->{pools}[0]{processes} };
is($served, 7, 'the pool\'s status counts those requests');

$r = main::stock_get($port, '/refused/x');
is($r->{status}, 502, 'from 127.0.0.2, not in allow=, the connection is refused (the stock nginx answers 502)');
ok(wait_for(sub { error_log_text() =~ /refused a FastCGI connection from 127\.0\.0\.2: not in allow= \(127\.0\.0\.1\/32\)/ }, 30),
    'and the module logs whom it refused');
stock_nginx_stop();
# The relayed connections count among stub_status's active connections
# while they are open, and no longer once the stock nginx closed them:
# only this request remains.
ok(wait_for(sub { http_get('/stub')->{body} =~ /^Active connections: 1 $/m }, 30), 'stub_status: no relayed connection left active')
    or diag(http_get('/stub')->{body});
--- error_log
refused a FastCGI connection from 127.0.0.2


=== TEST 2: requests from the stock nginx take a place in a process like the module's own: the rest wait, counted in the status
--- http_config
rust_pool one program=/usr/bin/php-cgi processes=1 env=PHP_FCGI_MAX_REQUESTS=0 listen=127.0.0.1:$TEST_NGINX_PORT2;
--- config
location = /status { rust_pool_status; }
--- perl
my $port = Test::Gateway::free_port();
my $upstream = Test::Gateway::expand('$TEST_NGINX_PORT2');
main::start_stock($port, $upstream, <<'LOC', servroot() . '/apps/php');
        location ~ \.php$ {
            fastcgi_pass apphosts;
        }
LOC
my $gate = servroot() . '/tmp/gate-open';
my @held = map {
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port") or die;
    print $s "GET /gate.php?f=$gate&n=$_ HTTP/1.1\r\nHost: stock\r\nConnection: close\r\n\r\n";
    $s;
} 1 .. 2;
my $pool;
ok(wait_for(sub { $pool = main::status()->{pools}[0]; $pool->{waiting} == 1 && $pool->{processes}[0]{active} == 1 }, 30),
    'one request runs in the only process, the other waits (allow= defaults to loopback, which the stock nginx is)');
open my $fh, '>', $gate or die; close $fh;
for my $s (@held) {
    local $/;
    my $raw = <$s>;
    like($raw, qr{^HTTP/1\.1 200.*released \d+}s, 'each is served once the gate opens');
}
is(main::status()->{pools}[0]{waiting}, 0, 'nothing waits any more');
stock_nginx_stop();
--- no_error_log
[error]


=== TEST 3: listen= on a Python pool needs its own app=
--- http_config
rust_pool py processes=1 listen=127.0.0.1:$TEST_NGINX_PORT2;
--- must_die
--- error_log eval
qr{"rust_pool py": listen= on a Python pool serves its own app=; give it one \(requests from another nginx name no app\) in .*nginx.conf:\d+}


=== TEST 4: a bad allow= fails nginx -t
--- http_config
rust_pool php program=/usr/bin/php-cgi listen=127.0.0.1:$TEST_NGINX_PORT2 allow=example.com;
--- must_die
--- error_log eval
qr{"rust_pool php": allow="example.com" is not an address or a network; write 10.0.0.5, 10.0.0.0/8, ::1 or all in .*nginx.conf:\d+}
