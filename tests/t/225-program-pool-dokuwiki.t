# DokuWiki (Debian's dokuwiki package) served by php-cgi from a program pool
# (rust_pool program=, rust_fastcgi_pass), driven as a user drives it.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::Gateway;

run_tests();

__DATA__

=== TEST 1: explore
--- setup
my $root = servroot();
system('cp', '-a', '/usr/share/dokuwiki', "$root/html/wiki") == 0 or die;
mkdir "$root/wiki-conf";
for my $f (glob '/etc/dokuwiki/*') { next if -l $f || -d $f; system('cp', $f, "$root/wiki-conf/") }
system('cp', '-a', '/var/lib/dokuwiki/data', "$root/wiki-data") == 0 or die;
mkdir "$root/wiki-sessions";
system('chown', '-R', 'nobody:nogroup', "$root/wiki-data", "$root/wiki-sessions");
open my $fh, '>', "$root/html/wiki/inc/preload.php" or die;
print $fh "<?php\nif (!defined('DOKU_CONF')) define('DOKU_CONF', '$root/wiki-conf/');\nini_set('session.save_path', '$root/wiki-sessions');\n";
close $fh;
open $fh, '>', "$root/wiki-conf/local.php" or die;
print $fh "<?php\n\$conf['title'] = 'rust_pool wiki';\n\$conf['savedir'] = '$root/wiki-data';\n\$conf['useacl'] = 1;\n\$conf['superuser'] = '\@admin';\n";
close $fh;
open $fh, '>', "$root/wiki-conf/acl.auth.php" or die;
print $fh "# acl.auth.php\n# <?php exit()?>\n*\t\@ALL\t8\n";
close $fh;
open $fh, '>', "$root/wiki-conf/users.auth.php" or die;
print $fh "# users.auth.php\n# <?php exit()?>\n";
close $fh;
--- http_config
rust_pool php program=/usr/bin/php-cgi processes=2 env=PHP_FCGI_MAX_REQUESTS=0;
--- config
root $TEST_NGINX_HTML_DIR;
index doku.php;
location ~ [^/]\.php(/|$) {
    fastcgi_split_path_info ^(.+?\.php)(/.*)$;
    try_files $fastcgi_script_name =404;
    include $TEST_NGINX_CONF_DIR/rust_fastcgi.conf;
    rust_fastcgi_param PATH_INFO $fastcgi_path_info;
    rust_fastcgi_pass php;
}
--- perl
my $port = server_port();
my $r = http_request("GET /wiki/ HTTP/1.1\r\nHost: localhost:$port\r\nConnection: close\r\n\r\n");
print STDERR $r->{raw};
$r = http_request("GET /wiki/doku.php?id=start&do=edit HTTP/1.1\r\nHost: localhost:$port\r\nConnection: close\r\n\r\n");
print STDERR $r->{raw};
