package Test::Gateway;

# A small Test::Nginx-style harness for ngx-rust-gateway, using core Perl
# modules only.
#
# A .t file says `use Test::Gateway; run_tests();` and lists its cases after
# __DATA__ in the block format of openresty's Test::Nginx::Socket:
#
#   === TEST 1: name
#   --- http_config          (inside http {})
#   --- config               (inside the test server {})
#   --- main_config          (top level)
#   --- workers: 2           (worker_processes, default 1)
#   --- user_files           (">>> name" lines start files in the html dir)
#   --- request              ("GET /path", further lines are the body)
#   --- raw_request          (bytes sent as they are)
#   --- more_headers         (extra request header lines)
#   --- error_code: 200
#   --- response_body        (exact, after de-chunking)
#   --- response_body_like   (a regex)
#   --- response_headers     ("Name: value", or "!Name" for absent)
#   --- response_headers_like
#   --- error_log            (lines that must be in error.log, substrings)
#   --- expected_alerts      ([alert] lines the block causes on purpose,
#                             substrings; any other alert still fails it)
#   --- no_error_log         (lines that must not be)
#   --- must_die             (`nginx -t` must fail; error_log is matched
#                             against its output)
#   --- abort_after: 0.3     (close the connection after that many seconds)
#   --- wait: 0.5            (pause before stopping nginx)
#   --- timeout: 10          (client timeout, seconds)
#   --- min_nginx: 1.25.1    (skip the block on older nginx)
#   --- setup                (Perl run before nginx starts, to make files)
#   --- perl                 (Perl run with nginx up; Test::More and the
#                             helpers below are available)
#
# A section named "name eval" is evaluated as Perl first (for qr// or
# computed strings); "name chomp" drops the final newline. In config text,
# $TEST_NGINX_SERVER_PORT, $TEST_NGINX_HTML_DIR, $TEST_NGINX_SERVROOT,
# $TEST_NGINX_APPS (a copy of the project's tests/apps) and $TEST_NGINX_VENV
# (the test virtualenv that ci/test-venv.sh makes) are replaced. The
# project's tests/cgi-bin is copied to $TEST_NGINX_SERVROOT/cgi-bin.
#
# Every block starts its own nginx in a fresh temporary prefix on a free
# loopback port, and fails if error.log gets an [alert], [crit] or [emerg]
# line (unless the block expects nginx to die).
#
# Environment: TEST_NGINX_BINARY and TEST_NGINX_MODULE (default: the
# ci/build.sh artifacts), TEST_NGINX_LEAVE=1 keeps the prefixes,
# TEST_NGINX_VERBOSE=1 prints the error log of each block.

use strict;
use warnings;

use Cwd qw(abs_path);
use Exporter 'import';
use File::Basename qw(dirname);
use File::Copy qw(copy);
use File::Find qw(find);
use File::Path qw(make_path);
use File::Temp qw(tempdir);
use IO::Select;
use IO::Socket::INET;
use POSIX qw(WNOHANG);
use Test::More;
use Time::HiRes qw(sleep time);

our @EXPORT = qw(
    run_tests http_get http_request http_start http_finish
    nginx_reload nginx_pid worker_pids supervisor_pids pool_pids children_of server_port servroot error_log_text
    nginx_command nginx_wait_exit nginx_binary nginx_module venv expand
    wait_for multipart changed_under_load vm_hwm write_atomically write_wsgi_app build_request
    stock_nginx_start stock_nginx_stop
);

my $ROOT = abs_path(dirname(__FILE__) . '/../../..');
my $BINARY = $ENV{TEST_NGINX_BINARY} // "$ROOT/target/nginx/sbin/nginx";
my $MODULE = $ENV{TEST_NGINX_MODULE}
    // "$ROOT/target/nginx/modules/ngx_http_rust_gateway_module.so";
my $APPS = "$ROOT/tests/apps";
my $VENV = $ENV{TEST_NGINX_VENV} // '/tmp/ngx-rust-gateway-test-venv';

# State of the running block.
my ($PORT, $PORT2, $SERVROOT, $NGINX_PID);

sub server_port { $PORT }
sub nginx_binary { $BINARY }
sub nginx_module { $MODULE }
sub venv { $VENV }
sub servroot { $SERVROOT }
sub nginx_pid { $NGINX_PID }

# ---- blocks ------------------------------------------------------------------

sub parse_blocks {
    my $data = do { local $/; my $fh = \*main::DATA; <$fh> // '' };
    my @blocks;
    for my $chunk (split /^(?==== )/m, $data) {
        next unless $chunk =~ s/^=== (.*)\n//;
        my %block = (name => $1);
        $chunk =~ s/\n\s*\z/\n/;    # blank lines between blocks
        my @parts = split /^--- /m, $chunk;
        shift @parts;
        for my $part (@parts) {
            $part =~ s/^(\w+)((?:[ \t]+(?:eval|chomp))*)(?::[ \t]*(.*))?\n//
                or die "bad section in '$block{name}': $part";
            my ($key, $modifiers, $inline) = ($1, $2, $3);
            my $value = defined $inline && length $inline ? $inline : $part;
            $value =~ s/\n\z// if $modifiers =~ /chomp/;
            if ($modifiers =~ /eval/) {
                $value = eval $value;
                die "eval of $key in '$block{name}' failed: $@" if $@;
            }
            $block{$key} = $value;
        }
        push @blocks, \%block;
    }
    return @blocks;
}

sub run_tests {
    BAIL_OUT("nginx binary $BINARY not found; run ci/build.sh") unless -x $BINARY;
    BAIL_OUT("module $MODULE not found; run ci/build.sh") unless -f $MODULE;
    BAIL_OUT("test virtualenv $VENV not found; run ci/test-venv.sh") unless -x "$VENV/bin/python";
    for my $block (parse_blocks()) {
        subtest $block->{name} => sub { run_block($block) };
        # A block can leave early (plan skip_all in its perl section):
        # its nginx must not outlive it.
        stop_nginx();
    }
    done_testing();
}

sub nginx_version {
    my @v = `'$BINARY' -v 2>&1` =~ m{nginx/(\d+)\.(\d+)\.(\d+)};
    return sprintf '%03d%03d%03d', @v;
}

sub run_block {
    my ($block) = @_;
    if (my $min = $block->{min_nginx}) {
        my $want = sprintf '%03d%03d%03d', split /\./, $min;
        plan skip_all => "needs nginx $min" if nginx_version() lt $want;
    }
    $SERVROOT = tempdir('rgw-test-XXXXXX', TMPDIR => 1, CLEANUP => !$ENV{TEST_NGINX_LEAVE});
    chmod 0755, $SERVROOT;
    make_path(map { "$SERVROOT/$_" } qw(conf logs html tmp));
    chmod 0755, "$SERVROOT/html";
    chmod 01777, "$SERVROOT/tmp";    # apps (an unprivileged worker) write here
    copy_tree($APPS, "$SERVROOT/apps");
    copy_tree("$ROOT/tests/cgi-bin", "$SERVROOT/cgi-bin");
    # The params files beside nginx.conf, where a user puts them.
    copy($_, "$SERVROOT/conf/") or die "copy $_: $!" for glob "$ROOT/nginx-conf/rust_fastcgi*";
    write_user_files($block->{user_files}) if defined $block->{user_files};
    $PORT = free_port();
    # A second one, for a block that needs another listening socket.
    $PORT2 = free_port();
    $PORT2 = free_port() while $PORT2 == $PORT;
    write_file("$SERVROOT/conf/nginx.conf", nginx_conf($block));
    if (defined $block->{setup}) {
        run_perl($block, 'setup') or return;
    }

    if (exists $block->{must_die}) {
        my ($code, $out) = nginx_command('-t');
        isnt($code, 0, 'nginx -t fails');
        check_log_patterns($block, $out);
        return;
    }

    start_nginx($block->{workers}) or return;
    my $ok = eval {
        run_request($block) if defined $block->{request} || defined $block->{raw_request};
        run_perl($block, 'perl') if defined $block->{perl};
        1;
    };
    fail("block died: $@") unless $ok;
    sleep($block->{wait}) if $block->{wait};
    stop_nginx();

    my $log = error_log_text();
    diag($log) if $ENV{TEST_NGINX_VERBOSE};
    check_log_patterns($block, $log);
    # An alert the block causes on purpose (killing a process nginx
    # watches) may be listed under expected_alerts, each a substring.
    my @expected = lines_of($block->{expected_alerts});
    my @bad = grep { my $l = $_; /\[(alert|crit|emerg)\]/ && !grep { index($l, $_) >= 0 } @expected } split /\n/, $log;
    ok(!@bad, 'no [alert], [crit] or [emerg] in error.log') or diag(join "\n", @bad);
}

sub check_log_patterns {
    my ($block, $log) = @_;
    for my $want (lines_of($block->{error_log})) {
        ok(matches($log, $want), "error.log has: $want") or diag("error.log:\n$log");
    }
    for my $unwanted (lines_of($block->{no_error_log})) {
        ok(!matches($log, $unwanted), "error.log lacks: $unwanted");
    }
}

sub matches {
    my ($text, $pattern) = @_;
    return ref $pattern eq 'Regexp' ? $text =~ $pattern : index($text, $pattern) >= 0;
}

sub lines_of {
    my ($value) = @_;
    return () unless defined $value;
    return @$value if ref $value eq 'ARRAY';
    return ($value) if ref $value eq 'Regexp';
    return grep { length } split /\n/, $value;
}

sub run_request {
    my ($block) = @_;
    my $raw = $block->{raw_request} // build_request($block->{request}, $block->{more_headers});
    my %opt = (timeout => $block->{timeout} // 10);
    if (defined $block->{abort_after}) {
        my $s = http_start($raw);
        sleep($block->{abort_after});
        close $s;
        pass('client closed the connection early');
        return;
    }
    my $res = http_request($raw, %opt);
    if (defined $block->{error_code}) {
        is($res->{status}, $block->{error_code}, 'status code');
    }
    if (defined $block->{response_body}) {
        is($res->{body}, $block->{response_body}, 'response body');
    }
    if (defined $block->{response_body_like}) {
        my $re = ref $block->{response_body_like} ? $block->{response_body_like} : qr/$block->{response_body_like}/s;
        like($res->{body}, $re, 'response body matches');
    }
    for my $line (lines_of($block->{response_headers})) {
        if ($line =~ /^!\s*(\S+)/) {
            ok(!exists $res->{headers}{lc $1}, "no $1 header");
        } else {
            my ($name, $value) = $line =~ /^([^:]+):\s*(.*)$/ or die "bad header line: $line";
            is(join(', ', @{ $res->{headers}{lc $name} // [] }), $value, "header $name");
        }
    }
    for my $line (lines_of($block->{response_headers_like})) {
        my ($name, $re) = $line =~ /^([^:]+):\s*(.*)$/ or die "bad header line: $line";
        like(join(', ', @{ $res->{headers}{lc $name} // [] }), qr/$re/, "header $name matches");
    }
}

sub run_perl {
    my ($block, $section) = @_;
    my $code = $block->{$section};
    package main;
    my $ok = eval "use Test::More; no strict; no warnings; $code; 1";
    Test::More::fail("$section section died: $@") unless $ok;
    return $ok;
}

# ---- nginx ---------------------------------------------------------------------

sub nginx_conf {
    my ($block) = @_;
    my $workers = $block->{workers} // 1;
    my $main = $block->{main_config} // '';
    my $http = $block->{http_config} // '';
    my $server = $block->{config} // '';
    # Extra listen options (a block that needs `deferred`, say).
    my $listen = $block->{listen} ? " $block->{listen}" : '';
    my $conf = <<"CONF";
load_module $MODULE;
daemon off;
master_process on;
worker_processes $workers;
error_log logs/error.log info;
pid logs/nginx.pid;
$main
events {
    worker_connections 1024;
}

http {
    access_log logs/access.log;
    client_body_temp_path client_body_temp;
    proxy_temp_path proxy_temp;
    fastcgi_temp_path fastcgi_temp;
    uwsgi_temp_path uwsgi_temp;
    scgi_temp_path scgi_temp;
$http
    server {
        listen 127.0.0.1:$PORT$listen;
        server_name localhost;
$server
    }
}
CONF
    return expand($conf);
}

sub expand {
    my ($text) = @_;
    $text =~ s/\$TEST_NGINX_SERVER_PORT\b/$PORT/g;
    $text =~ s/\$TEST_NGINX_PORT2\b/$PORT2/g;
    $text =~ s/\$TEST_NGINX_HTML_DIR\b/$SERVROOT\/html/g;
    $text =~ s/\$TEST_NGINX_SERVROOT\b/$SERVROOT/g;
    $text =~ s/\$TEST_NGINX_APPS\b/$SERVROOT\/apps/g;
    $text =~ s/\$TEST_NGINX_VENV\b/$VENV/g;
    # The project's nginx-conf/ (rust_fastcgi_params and friends).
    $text =~ s/\$TEST_NGINX_CONF_DIR\b/$ROOT\/nginx-conf/g;
    return $text;
}

# The apps and CGI scripts are copied into the prefix: nginx workers run as
# an unprivileged user, who may not be able to read the checkout.
sub copy_tree {
    my ($src, $dest) = @_;
    find({ no_chdir => 1, wanted => sub {
        return if /__pycache__/;
        (my $rel = $File::Find::name) =~ s/^\Q$src\E//;
        if (-d $_) { make_path("$dest$rel"); chmod 0755, "$dest$rel" }
        else { copy($_, "$dest$rel") or die "copy $_: $!"; chmod((-x $_ ? 0755 : 0644), "$dest$rel") }
    } }, $src);
}

sub write_user_files {
    my ($spec) = @_;
    for my $file (split /^>>> /m, $spec) {
        next unless $file =~ s/^(\S+)\n//;
        my $path = "$SERVROOT/html/$1";
        make_path(dirname($path));
        write_file($path, expand($file));
    }
}

sub write_file {
    my ($path, $content) = @_;
    open my $fh, '>', $path or die "cannot write $path: $!";
    print $fh $content;
    close $fh;
}

sub free_port {
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 1, ReuseAddr => 1)
        or die "cannot find a free port: $!";
    my $port = $s->sockport;
    close $s;
    return $port;
}

# Starts the block's nginx and returns once it accepts connections and
# its workers exist: the master listens before it forks them, so a test
# that looks for a worker right away could otherwise find none.
sub start_nginx {
    my ($workers) = @_;
    $workers //= 1;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDOUT, '>', "$SERVROOT/logs/stdout.log";
        open STDERR, '>', "$SERVROOT/logs/stderr.log";
        exec $BINARY, '-p', "$SERVROOT/", '-c', 'conf/nginx.conf';
        exit 127;
    }
    $NGINX_PID = $pid;
    # A guard against a hang, not a limit: a busy machine may be slow.
    my $deadline = time + 60;
    while (time < $deadline) {
        if (waitpid($pid, WNOHANG) == $pid) {
            fail('nginx started');
            diag(slurp("$SERVROOT/logs/stderr.log") . error_log_text());
            undef $NGINX_PID;
            return 0;
        }
        if (-s "$SERVROOT/logs/nginx.pid" && IO::Socket::INET->new("127.0.0.1:$PORT") && worker_pids() >= $workers) {
            return 1;
        }
        sleep 0.02;
    }
    fail('nginx started');
    stop_nginx();
    return 0;
}

# Graceful stop (QUIT), as a user would; TERM and KILL only if it hangs,
# which the test then reports.
sub stop_nginx {
    return unless $NGINX_PID;
    kill 'QUIT', $NGINX_PID;
    my $deadline = time + 20;
    while (time < $deadline) {
        if (waitpid($NGINX_PID, WNOHANG) == $NGINX_PID) {
            undef $NGINX_PID;
            return;
        }
        sleep 0.02;
    }
    fail('nginx stopped gracefully within 20 s');
    kill 'KILL', $NGINX_PID;
    waitpid($NGINX_PID, 0);
    undef $NGINX_PID;
}

# Runs the nginx binary on the block's configuration with extra arguments
# (say "-t"); returns its exit code and output.
sub nginx_command {
    my @args = @_;
    my $out = `'$BINARY' -p '$SERVROOT/' -c conf/nginx.conf @args 2>&1`;
    return ($? >> 8, $out);
}

# Waits up to $timeout seconds for the nginx master to exit (after a signal
# the test sent); true if it did.
sub nginx_wait_exit {
    my ($timeout) = @_;
    my $deadline = time + $timeout;
    while (time < $deadline) {
        if (waitpid($NGINX_PID, WNOHANG) == $NGINX_PID) {
            undef $NGINX_PID;
            return 1;
        }
        sleep 0.02;
    }
    return 0;
}

sub nginx_reload {
    kill 'HUP', $NGINX_PID;
}

# The worker processes of the running nginx, from /proc (not the pool
# supervisor, which is also the master's child).
sub worker_pids {
    return grep { (slurp("/proc/$_/cmdline") // '') =~ /worker process/ } children_of($NGINX_PID);
}

# The pool supervisor of the running nginx (none before a pool is declared).
sub supervisor_pids {
    return grep { (slurp("/proc/$_/cmdline") // '') =~ /rust pool supervisor/ } children_of($NGINX_PID);
}

# The pool processes of the running nginx.
sub pool_pids {
    return map { children_of($_) } supervisor_pids();
}

# Peak resident memory of $pid, in KiB.
sub vm_hwm {
    my ($pid) = @_;
    open my $fh, '<', "/proc/$pid/status" or return 0;
    while (<$fh>) { return $1 if /^VmHWM:\s+(\d+) kB/ }
    return 0;
}

# Replaces $path with $text at once (a rename), as deploy tools do, so that
# nothing ever reads half a file.
sub write_atomically {
    my ($path, $text) = @_;
    open my $fh, '>', "$path.tmp" or die "$path.tmp: $!";
    print $fh $text;
    close $fh;
    chmod 0644, "$path.tmp";
    rename "$path.tmp", $path or die "$path: $!";
}

# A WSGI app that answers $body; with $broken, one with a syntax error.
sub write_wsgi_app {
    my ($path, $body, $broken) = @_;
    write_atomically($path, "def application(environ, start_response)" . ($broken ? "\n" : ":\n")
        . "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        . "    return [b'$body']\n");
}

# Waits up to $timeout seconds for $cond; true if it held.
sub wait_for {
    my ($cond, $timeout) = @_;
    my $deadline = time + $timeout;
    while (time < $deadline) {
        return 1 if $cond->();
        Time::HiRes::sleep(0.05);
    }
    return 0;
}

# A multipart/form-data body: name => 'value' or name => { filename, data }.
sub multipart {
    my ($boundary, @parts) = @_;
    my $body = '';
    while (my ($name, $spec) = splice @parts, 0, 2) {
        my ($data, $filename) = ref $spec ? ($spec->{data}, $spec->{filename}) : ($spec);
        $body .= "--$boundary\r\nContent-Disposition: form-data; name=\"$name\"";
        $body .= "; filename=\"$filename\"\r\nContent-Type: application/octet-stream" if defined $filename;
        $body .= "\r\n\r\n$data\r\n";
    }
    return $body . "--$boundary--\r\n";
}

# Sends GET / in a loop for up to $seconds, calling $change once after
# $change_after seconds. Returns how many responses were neither a 200 with
# $old nor one with $new, how many of each there were, and how long after
# the change $new first appeared (0 if never).
sub changed_under_load {
    my (%o) = @_;
    my ($bad, %seen, $changed_at, $new_after) = (0);
    my $t0 = time;
    while (time - $t0 < $o{seconds}) {
        if (!$changed_at && time - $t0 > $o{change_after}) {
            $o{change}->();
            $changed_at = time;
        }
        my $r = http_get('/');
        $seen{$r->{body}}++;
        $bad++ unless $r->{status} == 200 && ($r->{body} eq $o{old} || $r->{body} eq $o{new});
        $new_after //= time - $changed_at if $changed_at && $r->{body} eq $o{new};
        last if defined $new_after && time - $changed_at > $new_after + 1;
    }
    return ($bad, \%seen, $new_after // 0);
}

# Starts a second, stock nginx (no load_module) in servroot/stock, daemonized,
# with $http inside its http block (temp paths and access_log set): the
# other host a pool's listen= serves. Dies if it does not start.
sub stock_nginx_start {
    my ($http) = @_;
    my $dir = "$SERVROOT/stock";
    make_path("$dir/conf", "$dir/logs");
    chmod 0755, $dir;
    write_file("$dir/conf/nginx.conf", <<"CONF");
daemon on;
master_process on;
worker_processes 1;
error_log logs/error.log info;
pid logs/nginx.pid;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path client_body_temp;
    fastcgi_temp_path fastcgi_temp;
    proxy_temp_path proxy_temp;
    uwsgi_temp_path uwsgi_temp;
    scgi_temp_path scgi_temp;
$http
}
CONF
    my $out = `'$BINARY' -p '$dir/' -c conf/nginx.conf 2>&1`;
    die "stock nginx did not start: $out" if $?;
    wait_for(sub { -s "$dir/logs/nginx.pid" }, 30) or die 'no pid file';
}

# Stops the stock nginx (QUIT) and waits for it.
sub stock_nginx_stop {
    my $pid = slurp("$SERVROOT/stock/logs/nginx.pid") or return;
    chomp $pid;
    kill 'QUIT', $pid;
    wait_for(sub { !kill 0, $pid }, 30);
}

sub children_of {
    my ($parent) = @_;
    my @pids;
    for my $stat (glob '/proc/[0-9]*/stat') {
        my $line = slurp($stat) // next;
        my ($pid, $state, $ppid) = $line =~ /^(\d+) \(.*\) (\S+) (\d+)/ or next;
        push @pids, $pid if $ppid == $parent && $state ne 'Z';
    }
    return sort { $a <=> $b } @pids;
}

sub error_log_text {
    return slurp("$SERVROOT/logs/error.log") // '';
}

sub slurp {
    my ($path) = @_;
    open my $fh, '<', $path or return undef;
    local $/;
    return scalar <$fh>;
}

# ---- HTTP client ---------------------------------------------------------------

sub build_request {
    my ($request, $more_headers) = @_;
    $request =~ s/\n\z//;
    my ($line, $body) = split /\n/, $request, 2;
    $line .= ' HTTP/1.1' unless $line =~ m{ HTTP/\d\.\d$};
    my $raw = "$line\r\nHost: localhost\r\nConnection: close\r\n";
    for my $h (lines_of($more_headers)) {
        $raw .= "$h\r\n";
    }
    if (defined $body) {
        $raw .= 'Content-Length: ' . length($body) . "\r\n";
    }
    return $raw . "\r\n" . ($body // '');
}

sub http_get {
    my ($path, %opt) = @_;
    return http_request(build_request("GET $path", $opt{headers}), %opt);
}

sub http_request {
    my ($raw, %opt) = @_;
    return http_finish(http_start($raw), %opt);
}

sub http_start {
    my ($raw) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$PORT", Proto => 'tcp')
        or die "cannot connect to nginx on port $PORT: $!";
    $s->autoflush(1);
    print $s $raw;
    return $s;
}

# Reads the whole response (the server closes the connection) and parses it.
sub http_finish {
    my ($s, %opt) = @_;
    my $timeout = $opt{timeout} // 10;
    my $sel = IO::Select->new($s);
    my $data = '';
    my $deadline = time + $timeout;
    while (1) {
        my $left = $deadline - time;
        last if $left <= 0 || !$sel->can_read($left);
        my $n = sysread($s, my $buf, 65536);
        last unless $n;
        $data .= $buf;
    }
    close $s;
    return parse_response($data);
}

sub parse_response {
    my ($raw) = @_;
    my %res = (raw => $raw, status => 0, headers => {}, body => '');
    my ($head, $body) = split /\r\n\r\n/, $raw, 2;
    return \%res unless defined $head;
    my @lines = split /\r\n/, $head;
    ($res{status}) = (shift(@lines) // '') =~ m{^HTTP/\d\.\d (\d{3})};
    $res{status} //= 0;
    for my $line (@lines) {
        my ($name, $value) = $line =~ /^([^:]+):\s*(.*)$/ or next;
        push @{ $res{headers}{lc $name} }, $value;
    }
    $body //= '';
    if (join(',', @{ $res{headers}{'transfer-encoding'} // [] }) =~ /chunked/i) {
        # An offset walk: cutting the front off a large string per chunk
        # would be quadratic.
        my ($plain, $complete, $at) = ('', 0, 0);
        while ((my $eol = index($body, "\r\n", $at)) >= 0) {
            my ($size) = substr($body, $at, $eol - $at) =~ /^([0-9a-fA-F]+)/ or last;
            $size = hex $size;
            $at = $eol + 2;
            if ($size == 0) { $complete = 1; last }
            last if $at + $size > length $body;
            $plain .= substr($body, $at, $size);
            $at += $size + 2;
        }
        $res{chunked_complete} = $complete;
        $body = $plain;
    }
    $res{body} = $body;
    return \%res;
}

1;
