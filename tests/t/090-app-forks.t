# An app that forks (os.fork, or a library doing it): the child is the
# app's, but it never keeps the server's sockets and never runs server
# code; when it returns into the server, it exits.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::Gateway;
use IO::Socket::INET;

sub child_of { my ($r) = @_; return ($r->{body} =~ /parent of (\d+)/)[0] // 0 }

# The inode of the socket listening on $port (from /proc/net/tcp).
sub listener_inode {
    my ($port) = @_;
    open my $fh, '<', '/proc/net/tcp' or return;
    my $hex = sprintf '%04X', $port;
    while (<$fh>) {
        my @f = split;
        return $f[9] if $f[1] =~ /:$hex$/ && $f[3] eq '0A';
    }
    return;
}

sub tcp_inodes {
    open my $fh, '<', '/proc/net/tcp' or return;
    return map { (split)[9] } grep { !/^\s*sl/ } <$fh>;
}

sub sockets_of {
    my ($pid) = @_;
    return map { readlink($_) =~ /^socket:\[(\d+)\]/ ? $1 : () } glob "/proc/$pid/fd/*";
}

run_tests();

__DATA__

=== TEST 1: a child that returns into the server exits there, in embedded WSGI, ASGI and a pool; nginx serves on
--- http_config
rust_pool p processes=1 threads=2;
--- config
location /wsgi { rust_wsgi $TEST_NGINX_APPS/forker.py; }
location /asgi { rust_asgi $TEST_NGINX_APPS/forker.py; }
location /pool { rust_wsgi $TEST_NGINX_APPS/forker.py pool=p; }
--- perl
for my $kind (qw(wsgi asgi pool)) {
    my $r = http_get("/$kind?wait");
    is($r->{status}, 200, "$kind: answered");
    my $child = main::child_of($r);
    ok($child, "$kind: by the parent, whose child $child returned");
    ok(!kill(0, $child), "$kind: the child is gone (the parent reaped it)");
    is(http_get("/$kind?wait")->{status}, 200, "$kind: and the next request is served");
}
# A pool process's child says it through the supervisor, which copies
# the line into the log after the answer may have gone: wait for it.
my $said = sub { my @lines = error_log_text() =~ /a process the app forked returned into the server/g; scalar @lines };
ok(wait_for(sub { $said->() == 6 }, 30), 'each child said why it exits') or diag($said->() . ' lines');

=== TEST 2: a lingering child holds none of the server's sockets: after nginx quits, the port is free and the pool's connections close
--- http_config
rust_pool p processes=1 threads=2;
--- config
location /wsgi { rust_wsgi $TEST_NGINX_APPS/forker.py; }
location /asgi { rust_asgi $TEST_NGINX_APPS/forker.py; }
location /pool { rust_wsgi $TEST_NGINX_APPS/forker.py pool=p; }
--- perl
my $port = server_port();
my $listener = main::listener_inode($port);
ok($listener, "the listening socket ($listener)");
my @children;
for my $kind (qw(wsgi asgi pool)) {
    my $r = http_get("/$kind?linger");
    is($r->{status}, 200, "$kind: answered");
    my $child = main::child_of($r);
    ok($child && kill(0, $child), "$kind: its child $child lingers");
    push @children, $child;
    ok(!(grep { $_ eq $listener } main::sockets_of($child)), "$kind: the child does not hold the listening socket");
}
# Nor any TCP socket of the worker's (clients, listeners): an asyncio
# loop's own wakeup socketpair, say, is the app's runtime, not nginx's.
my ($worker) = worker_pids();
my %tcp = map { $_ => 1 } main::tcp_inodes();
my %worker_sockets = map { $_ => 1 } grep { $tcp{$_} } main::sockets_of($worker);
ok(%worker_sockets, 'the worker has TCP sockets');
for my $child (@children[0, 1]) {
    ok(!(grep { $worker_sockets{$_} } main::sockets_of($child)), "child $child holds none of the worker's TCP sockets");
}
my ($pool) = pool_pids();
my %pool_sockets = map { $_ => 1 } main::sockets_of($pool);
ok(!(grep { $pool_sockets{$_} } main::sockets_of($children[2])), 'the pool child holds none of the pool process\'s sockets');
kill 'QUIT', nginx_pid();
ok(nginx_wait_exit(30), 'nginx quits while the children linger');
my $again = IO::Socket::INET->new(LocalAddr => "127.0.0.1:$port", Listen => 1, ReuseAddr => 1);
ok($again, "the port is free for the next nginx ($!)");
ok((grep { kill 0, $_ } @children) == 3, 'the children are the app\'s: still there');
kill 'KILL', @children;
