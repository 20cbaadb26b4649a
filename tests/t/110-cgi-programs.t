# Real CGI programs from Debian's packages, doing their real jobs.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::Gateway;

# The user nginx's workers run as (nobody when the master is root), who
# owns what the programs write, as www-data would own /srv/git.
sub worker_user { $> == 0 ? 'nobody' : scalar getpwuid($>) }

sub git {
    my ($dir, @args) = @_;
    my $home = servroot() . '/tmp/home';
    mkdir $home;
    local $ENV{HOME} = $home;
    local $ENV{GIT_CONFIG_NOSYSTEM} = 1;
    my $cmd = join ' ', map { "'$_'" } 'git', '-c', 'user.name=Test', '-c', 'user.email=t@example.test',
        '-c', 'init.defaultBranch=main', '-c', 'protocol.version=2', @args;
    my $out = `cd '$dir' && $cmd 2>&1`;
    return ($? >> 8, $out);
}

run_tests();

__DATA__

=== TEST 1: man2html with the nginx configuration Debian's fcgiwrap documents (root /usr/lib, /cgi-bin/)
--- config
location /cgi-bin/ {
    # From /usr/share/doc/fcgiwrap/examples/nginx.conf, with rust_cgi in
    # place of fastcgi_pass to fcgiwrap.
    gzip off;
    root /usr/lib;
    rust_cgi;
}
--- perl
plan skip_all => 'man2html is not installed' unless -x '/usr/lib/cgi-bin/man/man2html';
my $r = http_get('/cgi-bin/man/man2html');
is($r->{status}, 200, 'the main contents');
like($r->{body}, qr/Manual Pages - Main Contents/i, 'rendered by man2html');
$r = http_get('/cgi-bin/man/man2html?1+ls');
is($r->{status}, 200, 'a man page');
like($r->{headers}{'content-type'}[0], qr{text/html}, 'as HTML');
like($r->{body}, qr{<TITLE>Man page of LS</TITLE>}, 'ls(1)');
like($r->{body}, qr{list directory contents}, 'with its text');
like($r->{body}, qr{HREF="/cgi-bin/man/man2html}, 'linking back through SCRIPT_NAME');


=== TEST 2: git-http-backend: clone, push (a chunked upload) and clone again over smart HTTP
--- setup
my $root = servroot() . '/tmp/git';
mkdir $root or die $!;
system("git init -q --bare --initial-branch=main '$root/repo.git' && git -C '$root/repo.git' config http.receivepack true") == 0 or die 'git init failed';
system('chown', '-R', main::worker_user(), $root) == 0 or die 'chown failed' if $> == 0;
--- config
location ~ /git(/.*) {
    client_max_body_size 0;
    rust_cgi_pass /usr/lib/git-core/git-http-backend;
    rust_cgi_param GIT_HTTP_EXPORT_ALL "";
    rust_cgi_param GIT_PROJECT_ROOT $TEST_NGINX_SERVROOT/tmp/git;
    rust_cgi_param PATH_INFO $1;
}
--- timeout: 60
--- perl
my $url = 'http://127.0.0.1:' . server_port() . '/git/repo.git';
my $work = servroot() . '/tmp/work';
mkdir $work;
my ($code, $out) = main::git($work, 'clone', '-q', $url, 'one');
is($code, 0, 'clone of the empty repository') or diag($out);
open my $fh, '>', "$work/one/big.bin" or die $!;
binmode $fh;
print $fh pack('N*', map { $_ * 2654435761 % 4294967296 } 1 .. 500_000);    # 2 MB, over git's 1 MiB post buffer
close $fh;
open $fh, '>', "$work/one/README" or die $!;
print $fh "pushed through rust_cgi\n";
close $fh;
($code, $out) = main::git("$work/one", 'add', '.');
($code, $out) = main::git("$work/one", 'commit', '-q', '-m', 'first');
is($code, 0, 'commit') or diag($out);
($code, $out) = main::git("$work/one", 'push', '-q', 'origin', 'main');
is($code, 0, 'push') or diag($out);
($code, $out) = main::git($work, 'clone', '-q', $url, 'two');
is($code, 0, 'clone again') or diag($out);
is(do { local (@ARGV, $/) = "$work/two/README"; <> }, "pushed through rust_cgi\n", 'the pushed file is there');
is(-s "$work/two/big.bin", 2_000_000, 'and the big one, whole');
