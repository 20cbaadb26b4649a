# DokuWiki (Debian's dokuwiki package) served by php-cgi from a program pool
# (rust_pool program=, rust_fastcgi_pass), driven as a user drives it.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::Gateway;

our %jar;

sub request {
    my ($method, $path, %o) = @_;
    my $raw = "$method $path HTTP/1.1\r\nHost: localhost:" . server_port() . "\r\nConnection: close\r\n";
    $raw .= 'Cookie: ' . join('; ', map { "$_=$jar{$_}" } sort keys %jar) . "\r\n" if %jar;
    if (defined $o{body}) { $raw .= "Content-Type: $o{type}\r\nContent-Length: " . length($o{body}) . "\r\n" }
    $raw .= "\r\n" . ($o{body} // '');
    my $r = http_request($raw, timeout => 30);
    for (@{ $r->{headers}{'set-cookie'} // [] }) {
        my ($n, $v) = /^([^=;\s]+)=([^;]*)/ or next;
        if ($v eq 'deleted' || /max-age=0\b/i) { delete $jar{$n} } else { $jar{$n} = $v }
    }
    return $r;
}

sub make_wiki {
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
    print $fh "# acl.auth.php\n# <?php exit()?>\n*\t\@ALL\t1\n*\t\@user\t8\n";
    close $fh;
    my $hash = crypt('s3cret pass', '$6$rgwtestsalt$');
    open $fh, '>', "$root/wiki-conf/users.auth.php" or die;
    print $fh "# users.auth.php\n# <?php exit()?>\neditor:$hash:Test Editor:editor\@example.test:user\n";
    close $fh;
}

run_tests();

__DATA__

=== TEST 1: explore
--- setup
main::make_wiki();
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
my $r = main::request(GET => '/wiki/doku.php?id=start&do=login');
print STDERR $r->{raw} =~ /(<form id="dw__login".*?<\/form>)/s;
print STDERR "\nJAR: ", join(', ', %main::jar), "\n";
$r = main::request(POST => '/wiki/doku.php?id=start&do=login', type => 'application/x-www-form-urlencoded', body => 'sectok=&id=start&do=login&u=editor&p=s3cret+pass');
print STDERR substr($r->{raw}, 0, 1500);
print STDERR "\nJAR: ", join(', ', %main::jar), "\n";
$r = main::request(GET => '/wiki/doku.php?id=rgw:hello&do=edit');
print STDERR $r->{raw} =~ /(<form id="dw__editform".*?<\/form>)/s;
$r = main::request(GET => '/wiki/lib/exe/mediamanager.php?ns=rgw');
print STDERR $r->{raw} =~ /(<form id="dw__upload".*?<\/form>)/s;
