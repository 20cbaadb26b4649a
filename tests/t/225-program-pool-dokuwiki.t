# DokuWiki, from Debian's dokuwiki package, served by php-cgi processes of a
# program pool (rust_pool program=, rust_fastcgi_pass) with the location
# a PHP site has behind fastcgi_pass, and used as a person uses it in a
# browser: pages render; an editor logs in (session and login cookies),
# edits a page through the edit form with its CSRF token (a wrong token is
# refused) and sees the saved text rendered; uploads an image through the
# media manager's multipart form and gets the same bytes back.
#
# Each block runs its own DokuWiki instance: a copy of /usr/share/dokuwiki
# whose inc/preload.php points DOKU_CONF at a configuration made from
# /etc/dokuwiki, with savedir a copy of /var/lib/dokuwiki/data, all under
# the block's servroot; the system's DokuWiki is only read.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::Gateway;

# The user nginx's workers, and so the php-cgi processes, run as: the
# owner of the wiki's data, as www-data owns /var/lib/dokuwiki.
sub worker_user { $> == 0 ? 'nobody' : scalar getpwuid($>) }

sub write_file {
    my ($path, $text) = @_;
    open my $fh, '>', $path or die "$path: $!";
    print $fh $text;
    close $fh;
    chmod 0644, $path;
}

sub slurp {
    my ($path) = @_;
    open my $fh, '<', $path or return undef;
    binmode $fh;
    local $/;
    return scalar <$fh>;
}

# Makes the block's DokuWiki: code in html/wiki, configuration in
# wiki/conf, data in wiki/data, PHP sessions in wiki/sessions.
sub make_wiki {
    my $root = servroot();
    my $wiki = "$root/wiki";
    -d '/usr/share/dokuwiki' or die "the dokuwiki package is not installed (ci/test.sh installs it)\n";
    mkdir $wiki or die $!;
    chmod 0755, $wiki;
    # The code, copied: DokuWiki finds its inc/ from the script's real
    # path, so a symlink would run the system's preload.php.
    system('cp', '-a', '/usr/share/dokuwiki', "$root/html/wiki") == 0 or die 'cp of the code failed';
    write_file("$root/html/wiki/inc/preload.php", <<"PHP");
<?php
// This instance's configuration (and through it its savedir).
define('DOKU_CONF', '$wiki/conf/');
// Its PHP sessions, not in the system's /var/lib/php/sessions.
ini_set('session.save_path', '$wiki/sessions');
PHP
    # Debian's configuration files (not the web servers' ones, nor the
    # links to its ACL and users in /var/lib/dokuwiki/acl).
    mkdir "$wiki/conf" or die $!;
    chmod 0755, "$wiki/conf";
    for my $file (glob '/etc/dokuwiki/*') {
        next if -l $file || !-f $file || $file =~ m{/(apache\.conf|lighttpd\.conf|htaccess)$};
        system('cp', $file, "$wiki/conf/") == 0 or die "cp $file failed";
    }
    write_file("$wiki/conf/local.php", <<"PHP");
<?php
\$conf['title'] = 'rust_pool wiki';
\$conf['lang'] = 'en';
\$conf['savedir'] = '$wiki/data';
\$conf['useacl'] = 1;
\$conf['superuser'] = '\@admin';
PHP
    # Debian's ACL: everyone reads, users (logged in) edit and upload.
    write_file("$wiki/conf/acl.auth.php", "# acl.auth.php\n# <?php exit()?>\n*\t\@ALL\t1\n*\t\@user\t8\n");
    my $hash = crypt('s3cret pass', '$6$rgwtestsalt$');
    write_file("$wiki/conf/users.auth.php",
        "# users.auth.php\n# <?php exit()?>\neditor:$hash:Test Editor:editor\@example.test:user\n");
    # The data: Debian's initial pages and media, writable by PHP only.
    system('cp', '-a', '/var/lib/dokuwiki/data', "$wiki/data") == 0 or die 'cp of the data failed';
    mkdir "$wiki/sessions" or die $!;
    chmod 0700, "$wiki/sessions";
    if ($> == 0) {
        system('chown', '-R', worker_user(), "$wiki/data", "$wiki/sessions") == 0 or die 'chown failed';
    }
}

# ---- a browser: cookies, forms -------------------------------------------------

our %jar;

# Sends a request as a browser does (Host with the port, the cookies it
# holds) and keeps the cookies the response sets.
sub request {
    my ($method, $path, %o) = @_;
    my $raw = "$method $path HTTP/1.1\r\nHost: localhost:" . server_port() . "\r\nUser-Agent: rgw-test\r\nConnection: close\r\n";
    $raw .= 'Cookie: ' . join('; ', map { "$_=$jar{$_}" } sort keys %jar) . "\r\n" if %jar;
    $raw .= "Content-Type: $o{type}\r\nContent-Length: " . length($o{body}) . "\r\n" if defined $o{body};
    my $r = http_request($raw . "\r\n" . ($o{body} // ''), timeout => 60);
    for (@{ $r->{headers}{'set-cookie'} // [] }) {
        my ($name, $value) = /^([^=;\s]+)=([^;]*)/ or next;
        if ($value eq 'deleted' || /;\s*max-age=0\b/i) { delete $jar{$name} } else { $jar{$name} = $value }
    }
    return $r;
}

sub unhtml {
    my ($s) = @_;
    return undef unless defined $s;
    $s =~ s/&quot;/"/g;
    $s =~ s/&#0*39;/'/g;
    $s =~ s/&lt;/</g;
    $s =~ s/&gt;/>/g;
    $s =~ s/&amp;/&/g;
    return $s;
}

sub attrs {
    my ($s) = @_;
    my %a;
    $a{$1} = unhtml($2 // '') while $s =~ /([\w\[\]:-]+)(?:="([^"]*)")?/g;
    return %a;
}

# The form with id $id in $html: its action, enctype and fields in
# document order, each [name, value] (a file input's value undef; a
# checkbox's third element "checked" or "unchecked").
sub form {
    my ($html, $id) = @_;
    $html =~ m{<form\b([^>]*\bid="\Q$id\E"[^>]*)>(.*?)</form>}s or return undef;
    my ($head, $inner) = ($1, $2);
    my %form = attrs($head);
    my @fields;
    while ($inner =~ m{<input\b([^>]*)>|<textarea\b([^>]*)>(.*?)</textarea>}gs) {
        my %a = attrs(defined $1 ? $1 : $2);
        next unless defined $a{name};
        if (defined $2) {
            # As a browser reads a textarea: a first newline dropped, line
            # breaks made LF.
            (my $text = unhtml($3)) =~ s/^\r?\n//;
            $text =~ s/\r\n?/\n/g;
            push @fields, [$a{name}, $text];
            next;
        }
        my $type = $a{type} // 'text';
        push @fields, [$a{name}, $a{value} // ''] if $type =~ /^(hidden|text|password)$/;
        push @fields, [$a{name}, $a{value} // 'on', exists $a{checked} ? 'checked' : 'unchecked'] if $type eq 'checkbox';
        push @fields, [$a{name}, undef] if $type eq 'file';
    }
    return { action => $form{action}, enctype => $form{enctype} // '', fields => \@fields };
}

# A form's fields as name => value.
sub fields {
    my ($form) = @_;
    return map { ($_->[0] => $_->[1]) } @{ $form->{fields} // [] };
}

sub urlencode {
    my ($s) = @_;
    $s =~ s/([^A-Za-z0-9\-._~ ])/sprintf('%%%02X', ord $1)/ge;
    $s =~ tr/ /+/;
    return $s;
}

# Submits $form as a browser does, with what the user typed or chose in
# %$values (a file: { filename, data }; a checkbox: true to tick it) and
# the button pressed. Line breaks go as CRLF, as browsers send them.
sub submit {
    my ($form, $values, @button) = @_;
    my @pairs;
    for my $field (@{ $form->{fields} }) {
        my ($name, $value, $check) = @$field;
        if ($check) {
            push @pairs, [$name, $value] if exists $values->{$name} ? $values->{$name} : $check eq 'checked';
            next;
        }
        $value = $values->{$name} if exists $values->{$name};
        $value =~ s/\r?\n/\r\n/g if defined $value && !ref $value;
        push @pairs, [$name, $value];
    }
    push @pairs, [@button] if @button;
    if ($form->{enctype} eq 'multipart/form-data') {
        my $boundary = '----rgwFormBoundary' . join('', map { ('a' .. 'z')[rand 26] } 1 .. 16);
        return request(POST => $form->{action}, type => "multipart/form-data; boundary=$boundary",
            body => multipart($boundary, map { ($_->[0], $_->[1] // { filename => '', data => '' }) } @pairs));
    }
    return request(POST => $form->{action}, type => 'application/x-www-form-urlencoded',
        body => join('&', map { urlencode($_->[0]) . '=' . urlencode($_->[1] // '') } @pairs));
}

# Logs in as the editor through the login form.
sub login {
    my $r = request(GET => '/wiki/doku.php?id=start&do=login');
    my $form = form($r->{body}, 'dw__login') or return $r;
    return submit($form, { u => 'editor', p => 's3cret pass' });
}

# The [error] lines of error.log but nginx's own for the denied location
# and the one PHP warning DokuWiki 2022-07-31 gives under PHP 8.2 (its
# media manager reads an unset $fullscreen), which php-cgi writes to its
# stderr and nginx logs as it logs a FastCGI server's stderr.
sub unexpected_errors {
    return grep {
        /\[(error|crit|alert|emerg)\]/
            && !/access forbidden by rule, .*request: "GET \/wiki\/inc\//
            && !/ sent in stderr: "PHP Warning:  Undefined variable \$fullscreen in \S+\/lib\/exe\/mediamanager\.php on line \d+"/
    } split /\n/, error_log_text();
}

run_tests();

__DATA__

=== TEST 1: the start page, a page of Debian's initial data and the stylesheet render, for a visitor
--- setup
main::make_wiki();
--- http_config
rust_pool php program=/usr/bin/php-cgi processes=2 env=PHP_FCGI_MAX_REQUESTS=0;
--- config
root $TEST_NGINX_HTML_DIR;
index doku.php;
location ~ ^/wiki/(data|conf|bin|inc|vendor)/ {
    deny all;
}
location ~ [^/]\.php(/|$) {
    fastcgi_split_path_info ^(.+?\.php)(/.*)$;
    try_files $fastcgi_script_name =404;
    include $TEST_NGINX_CONF_DIR/rust_fastcgi.conf;
    rust_fastcgi_param PATH_INFO $fastcgi_path_info;
    rust_fastcgi_pass php;
}
--- perl
%main::jar = ();
my $r = main::request(GET => '/wiki/');
is($r->{status}, 200, 'the start page: 200');
is($r->{headers}{'content-type'}[0], 'text/html; charset=utf-8', 'HTML');
like($r->{body}, qr{<meta name="generator" content="DokuWiki"/>}, 'made by DokuWiki');
like($r->{body}, qr{<title>start \[rust_pool wiki\]</title>}, "titled with the instance's local.php");
like($r->{body}, qr{This topic does not exist yet}, 'the start page is not written yet');
like($r->{body}, qr{href="/wiki/doku\.php\?id=start&amp;do=login&amp;sectok="}, 'links made from SCRIPT_NAME, a login link among them');
like(join("\n", @{ $r->{headers}{'set-cookie'} // [] }), qr{^DokuWiki=[-,a-zA-Z0-9]{22,}; path=/wiki/; HttpOnly$}m,
    'a session cookie for /wiki/');

$r = main::request(GET => '/wiki/doku.php?id=wiki:welcome');
is($r->{status}, 200, 'wiki:welcome: 200');
like($r->{body}, qr{<h1 [^>]*id="welcome_to_your_new_dokuwiki"[^>]*>Welcome to your new DokuWiki</h1>},
    "its heading, rendered from the copied data's wiki/welcome.txt");
like($r->{body}, qr{<a href="/wiki/doku\.php\?id=wiki:syntax" class="wikilink1" title="wiki:syntax"[^>]*>syntax page</a>},
    'a link to a page that exists');

$r = main::request(GET => '/wiki/doku.php?id=wiki:welcome&do=edit');
is($r->{status}, 200, 'do=edit for a visitor: 200');
like($r->{body}, qr{This page is read only\. You can view the source, but not change it\.}, 'the ACL lets visitors read only');
like($r->{body}, qr{<textarea [^>]*readonly="readonly"[^>]*>\s*====== Welcome to your new DokuWiki ======}s, 'the source, read-only');
unlike($r->{body}, qr{name="do\[save\]"}, 'and no Save button');

$r = main::request(GET => '/wiki/lib/exe/css.php?t=dokuwiki');
is($r->{status}, 200, 'lib/exe/css.php: 200');
like($r->{headers}{'content-type'}[0], qr{^text/css}, 'CSS');
like($r->{body}, qr{\.dokuwiki\b}, "the template's styles, compiled from LESS");

is(main::request(GET => '/wiki/inc/preload.php')->{status}, 403, 'inc/ is denied, as DokuWiki asks of a web server');
is(main::request(GET => '/wiki/nosuch.php')->{status}, 404, 'a missing script: 404 (try_files)');
is_deeply([main::unexpected_errors()], [], 'no unexpected error in error.log');


=== TEST 2: an editor logs in, creates a page through the edit form with its CSRF token, edits it again, and sees the text rendered
--- setup
main::make_wiki();
--- http_config
rust_pool php program=/usr/bin/php-cgi processes=2 env=PHP_FCGI_MAX_REQUESTS=0;
--- config
root $TEST_NGINX_HTML_DIR;
index doku.php;
location ~ ^/wiki/(data|conf|bin|inc|vendor)/ {
    deny all;
}
location ~ [^/]\.php(/|$) {
    fastcgi_split_path_info ^(.+?\.php)(/.*)$;
    try_files $fastcgi_script_name =404;
    include $TEST_NGINX_CONF_DIR/rust_fastcgi.conf;
    rust_fastcgi_param PATH_INFO $fastcgi_path_info;
    rust_fastcgi_pass php;
}
--- perl
%main::jar = ();
my $port = server_port();
my $wiki = servroot() . '/wiki';
my $r = main::request(GET => '/wiki/doku.php?id=rgw:hello');
like($r->{body}, qr{This topic does not exist yet}, 'rgw:hello does not exist yet');
my $login_link = main::unhtml(($r->{body} =~ m{<a href="([^"]*do=login[^"]*)"})[0]);
ok($login_link, "the page links to the login form ($login_link)");
ok($main::jar{DokuWiki}, 'the visitor has a session cookie');

$r = main::request(GET => $login_link);
my $form = main::form($r->{body}, 'dw__login');
ok($form, 'the login form');
# "Remember me": the login cookie outlives the session.
$r = main::submit($form, { u => 'editor', p => 's3cret pass', r => 1 });
is($r->{status}, 302, 'logged in: a redirect');
is($r->{headers}{location}[0], "http://localhost:$port/wiki/doku.php?id=rgw:hello",
    'back to the page, an absolute URL made from the Host header');
my ($login_cookie) = grep { /^DW[0-9a-f]{32}$/ } keys %main::jar;
ok($login_cookie, 'a login cookie');
$r = main::request(GET => '/wiki/doku.php?id=rgw:hello');
like($r->{body}, qr{Logged in as: <bdi>Test Editor</bdi> \(<bdi>editor</bdi>\)}, 'the page shows the editor logged in');

$r = main::request(GET => '/wiki/doku.php?id=rgw:hello&do=edit');
is($r->{status}, 200, 'do=edit: 200');
$form = main::form($r->{body}, 'dw__editform');
my %fields = main::fields($form);
like($fields{sectok}, qr/^[0-9a-f]{32}$/, 'the edit form has a CSRF token (for a logged-in user)');
is($fields{wikitext}, '', 'and an empty text: a new page');
# Characters a form encoding must carry: + & = % " < > and UTF-8.
my $text = "====== Served by rust_pool ======\n\n"
    . "Saved through **rust_fastcgi_pass** by php-cgi: a+b=c & d, 100% \"quoted\" <tag>, Grüße, 日本語.\n\n"
    . "  * first item\n  * second item\n";

$r = main::submit($form, { wikitext => $text, summary => 'forged', sectok => 'f' x 32 }, 'do[save]' => 1);
is($r->{status}, 200, 'a wrong token: no redirect');
like($r->{body}, qr{Security Token did not match\. Possible CSRF attack\.}, 'DokuWiki refuses it');
{
    # The right token in another session: without the session cookie,
    # the login cookie logs the editor in again, in a new session.
    local %main::jar = %main::jar;
    delete $main::jar{DokuWiki};
    $r = main::submit($form, { wikitext => $text, summary => 'other session' }, 'do[save]' => 1);
    like($r->{body}, qr{Security Token did not match\. Possible CSRF attack\.},
        'the token from another session is refused: it is tied to the session cookie');
}
ok(!-e "$wiki/data/pages/rgw/hello.txt", 'nothing was saved');

$r = main::submit($form, { wikitext => $text, summary => 'first version' }, 'do[save]' => 1);
is($r->{status}, 302, 'saved: a redirect');
is($r->{headers}{location}[0], "http://localhost:$port/wiki/doku.php?id=rgw:hello", 'to the page');
is(main::slurp("$wiki/data/pages/rgw/hello.txt"), $text, "the text is stored as typed, in the instance's savedir");
ok(!-e '/var/lib/dokuwiki/data/pages/rgw', "not in the system's");

$r = main::request(GET => '/wiki/doku.php?id=rgw:hello');
is($r->{status}, 200, 'the page: 200');
like($r->{body}, qr{<h1 [^>]*id="served_by_rust_pool"[^>]*>Served by rust_pool</h1>}, 'its heading rendered');
like($r->{body}, qr{Saved through <strong>rust_fastcgi_pass</strong> by php-cgi: a\+b=c &amp; d, 100% “quoted” &lt;tag&gt;, Grüße, 日本語\.},
    'its paragraph, every character as typed (the quotes made typographic by DokuWiki)');
like($r->{body}, qr{<li class="level1"><div class="li"> first item</div>\s*</li>\s*<li class="level1"><div class="li"> second item</div>\s*</li>},
    'its list');

# The second edit: the form carries the page's date, which DokuWiki
# compares to detect a conflicting edit.
$r = main::request(GET => '/wiki/doku.php?id=rgw:hello&do=edit');
$form = main::form($r->{body}, 'dw__editform');
%fields = main::fields($form);
is($fields{wikitext}, $text, 'the edit form has the saved text, through HTML and back');
like($fields{date}, qr/^\d{10}$/, 'and the date of the revision it edits');
# DokuWiki names revisions by the second: a person does not save twice in
# one.
ok(wait_for(sub { CORE::time() > $fields{date} }, 5), "the clock is past that second");
(my $changed = $text) =~ s/second item/second item, changed/;
$r = main::submit($form, { wikitext => $changed, summary => 'second version' }, 'do[save]' => 1);
is($r->{status}, 302, 'saved again');
$r = main::request(GET => '/wiki/doku.php?id=rgw:hello');
like($r->{body}, qr{<div class="li"> second item, changed</div>}, 'the change is rendered');
$r = main::request(GET => '/wiki/doku.php?id=rgw:hello&do=revisions');
like($r->{body}, qr{second version.*first version}s, 'the old revisions list both edits, newest first');
is_deeply([main::unexpected_errors()], [], 'no unexpected error in error.log');


=== TEST 3: an editor uploads an image through the media manager's multipart form and gets the same bytes back
--- setup
main::make_wiki();
--- http_config
rust_pool php program=/usr/bin/php-cgi processes=2 env=PHP_FCGI_MAX_REQUESTS=0;
--- config
root $TEST_NGINX_HTML_DIR;
index doku.php;
location ~ ^/wiki/(data|conf|bin|inc|vendor)/ {
    deny all;
}
location ~ [^/]\.php(/|$) {
    fastcgi_split_path_info ^(.+?\.php)(/.*)$;
    try_files $fastcgi_script_name =404;
    include $TEST_NGINX_CONF_DIR/rust_fastcgi.conf;
    rust_fastcgi_param PATH_INFO $fastcgi_path_info;
    rust_fastcgi_pass php;
}
--- perl
%main::jar = ();
my $wiki = servroot() . '/wiki';
my $r = main::login();
is($r->{status}, 302, 'the editor logs in');

# The edit page's toolbar links to the media manager (without JavaScript).
$r = main::request(GET => '/wiki/doku.php?id=rgw:hello&do=edit');
my $manager = main::unhtml(($r->{body} =~ m{<a href="(/wiki/lib/exe/mediamanager\.php\?ns=[^"]*)"})[0]);
is($manager, '/wiki/lib/exe/mediamanager.php?ns=rgw', 'the edit page links to the media manager');
$r = main::request(GET => $manager);
is($r->{status}, 200, 'the media manager: 200');
my $form = main::form($r->{body}, 'dw__upload');
ok($form, 'with its upload form');
is($form->{enctype}, 'multipart/form-data', 'multipart');
my %fields = main::fields($form);
like($fields{sectok}, qr/^[0-9a-f]{32}$/, 'and a CSRF token');

# A PNG with a photo's worth of bytes after its image data (viewers and
# DokuWiki's content check read the header), so that nginx keeps the
# body in a temporary file.
my $png = main::slurp('/usr/share/dokuwiki/lib/tpl/dokuwiki/images/logo.png');
ok(length $png > 100, 'a PNG to upload');
$png .= join '', map { chr(($_ * 7 + ($_ >> 8)) % 256) } 1 .. 600_000;

$r = main::submit($form, { upload => { filename => 'photo.png', data => $png }, mediaid => 'rust-pool.png', sectok => 'f' x 32 });
like($r->{body}, qr{Security Token did not match\. Possible CSRF attack\.}, 'an upload with a wrong token is refused');
ok(!-e "$wiki/data/media/rgw/rust-pool.png", 'and stores nothing');

$r = main::submit($form, { upload => { filename => 'photo.png', data => $png }, mediaid => 'rust-pool.png' });
is($r->{status}, 200, 'the upload: 200');
like($r->{body}, qr{Upload successful}, 'DokuWiki says it succeeded');
my $stored = main::slurp("$wiki/data/media/rgw/rust-pool.png");
ok(defined $stored && $stored eq $png, sprintf('the stored file is the uploaded one, byte for byte (%d bytes of %d)', length($stored // ''), length $png));
my @st = stat "$wiki/data/media/rgw/rust-pool.png";
is(@st ? scalar getpwuid($st[4]) : undef, main::worker_user(), "written by php-cgi as nginx's worker user");

%main::jar = ();
$r = main::request(GET => '/wiki/lib/exe/fetch.php?media=rgw:rust-pool.png');
is($r->{status}, 200, 'a visitor fetches it: 200');
is($r->{headers}{'content-type'}[0], 'image/png', 'as image/png');
is($r->{headers}{'content-length'}[0], length $png, 'with its length');
ok($r->{body} eq $png, 'the same bytes');
is_deeply([main::unexpected_errors()], [], 'no unexpected error in error.log');
--- error_log
a client request body is buffered to a temporary file
