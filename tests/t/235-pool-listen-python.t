# rust_pool ... listen= on a Python pool: a stock nginx reaches the pool's
# own app= with plain fastcgi_pass, as it would reach a flup or uWSGI
# FastCGI server.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::Gateway;
use JSON::PP;

run_tests();

__DATA__

=== TEST 1: a stock nginx with fastcgi_pass serves a Python pool's app, with the environ a WSGI app routes on
--- http_config
rust_pool py app=$TEST_NGINX_APPS/environ.py processes=1 listen=127.0.0.1:$TEST_NGINX_PORT2;
--- config
location = /status { rust_pool_status; }
--- perl
my $port = Test::Gateway::free_port();
my $upstream = expand('$TEST_NGINX_PORT2');
ok(eval { stock_nginx_start(<<"HTTP"); 1 }, 'a stock nginx starts') or diag($@);
    server {
        listen 127.0.0.1:$port;
        location / {
            # As for any WSGI app behind FastCGI (flup): the path is
            # PATH_INFO, the mount point SCRIPT_NAME.
            fastcgi_param SCRIPT_NAME "";
            fastcgi_param PATH_INFO \$uri;
            fastcgi_param QUERY_STRING \$query_string;
            fastcgi_param REQUEST_METHOD \$request_method;
            fastcgi_param CONTENT_TYPE \$content_type;
            fastcgi_param CONTENT_LENGTH \$content_length;
            fastcgi_param REQUEST_URI \$request_uri;
            fastcgi_param SERVER_PROTOCOL \$server_protocol;
            fastcgi_param SERVER_NAME \$server_name;
            fastcgi_param SERVER_PORT \$server_port;
            fastcgi_param REMOTE_ADDR \$remote_addr;
            fastcgi_pass 127.0.0.1:$upstream;
        }
    }
HTTP
ok(wait_for(sub { decode_json(http_get('/status')->{body})->{pools}[0]{running} == 1 }, 60), 'the pool process is ready');
my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port") or die;
print $s "POST /a/b?x=1 HTTP/1.1\r\nHost: stock\r\nX-Trace: t\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello";
my $raw = do { local $/; <$s> };
like($raw, qr{^HTTP/1\.1 200}, 'the app answers through the stock nginx');
my ($body) = $raw =~ /\r\n\r\n(.*)\z/s;
$body =~ s/^[0-9a-f]+\r\n//;    # a chunk, if chunked
$body =~ s/\r\n0\r\n\r\n\z//;
my $env = eval { decode_json($body) } // {};
is($env->{PATH_INFO}, '/a/b', 'PATH_INFO');
is($env->{QUERY_STRING}, 'x=1', 'QUERY_STRING');
is($env->{REQUEST_METHOD}, "POST", "REQUEST_METHOD") or diag(explain($env));
is($env->{HTTP_X_TRACE}, 't', 'the request headers');
my ($pool) = pool_pids();
is($env->{pid} // $pool, $pool, 'from the pool process') if exists $env->{pid};
stock_nginx_stop();
--- no_error_log
[error]
