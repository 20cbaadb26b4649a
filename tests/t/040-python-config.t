# Interpreter settings: virtualenvs, sys.path, environment, encodings.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::Gateway;

run_tests();

__DATA__

=== TEST 1: without a home: the system Python, in UTF-8 mode, with a real sys.executable
--- config
location / {
    rust_wsgi $TEST_NGINX_APPS/pyinfo.py;
}
--- request
GET /
--- error_code: 200
--- response_body_like eval
qr/^(?=.*"prefix": "\/usr")(?=.*"fs_encoding": "utf-8")(?=.*"utf8_mode": 1)(?=.*"executable": "\/usr\/bin\/python3[.\d]*")(?=.*"flask": null)/


=== TEST 2: rust_python_home names a virtualenv: its packages are importable
--- http_config
rust_python_home $TEST_NGINX_VENV;
--- config
location / {
    rust_wsgi $TEST_NGINX_APPS/pyinfo.py;
}
--- perl
my $venv = venv();
my $r = http_get('/');
is($r->{status}, 200, 'status');
like($r->{body}, qr/"prefix": "\Q$venv\E"/, 'sys.prefix is the virtualenv');
like($r->{body}, qr/"base_prefix": "\/usr"/, 'on the system Python');
like($r->{body}, qr/"executable": "\Q$venv\E\/bin\/python3?"/, 'sys.executable is the venv python');
like($r->{body}, qr/"flask": "\Q$venv\E\/lib\/python3\.\d+\/site-packages\/flask\/__init__.py"/, 'flask comes from the venv');


=== TEST 3: a virtualenv that does not exist fails nginx -t
--- http_config
rust_python_home /nonexistent/venv;
--- config
location / {
    rust_wsgi $TEST_NGINX_APPS/pyinfo.py;
}
--- must_die
--- error_log eval
qr{"rust_python_home": "/nonexistent/venv" does not exist or is not a directory in .*nginx.conf:\d+}


=== TEST 4: a virtualenv made for another Python version fails nginx -t and says so
--- setup
my $fake = servroot() . '/html/venv312';
mkdir $fake; mkdir "$fake/bin";
open my $fh, '>', "$fake/pyvenv.cfg" or die $!;
print $fh "home = /opt/python3.12/bin\ninclude-system-site-packages = false\nversion = 3.12.4\n";
close $fh;
--- http_config
rust_python_home $TEST_NGINX_HTML_DIR/venv312;
--- config
location / {
    rust_wsgi $TEST_NGINX_APPS/pyinfo.py;
}
--- must_die
--- error_log eval
qr{"rust_python_home": the virtualenv ".*/venv312" was made for Python 3\.12, but this module embeds Python 3\.\d+; recreate it with python3\.\d+ -m venv .*/venv312 in .*nginx.conf:\d+}


=== TEST 5: a directory that is neither a virtualenv nor a Python installation fails nginx -t
--- http_config
rust_python_home $TEST_NGINX_HTML_DIR;
--- config
location / {
    rust_wsgi $TEST_NGINX_APPS/pyinfo.py;
}
--- must_die
--- error_log eval
qr{"rust_python_home": ".*/html" is neither a virtualenv \(no pyvenv.cfg\) nor a Python 3\.\d+ installation}


=== TEST 6: rust_python_path puts directories first on sys.path, in order
--- http_config
rust_python_path $TEST_NGINX_APPS/extra1 $TEST_NGINX_APPS/extra2;
--- config
location / {
    rust_wsgi $TEST_NGINX_APPS/pyinfo.py;
}
--- perl
my $r = http_get('/');
like($r->{body}, qr/"extramod": "extra1"/, 'the first directory wins');
like($r->{body}, qr/"path_head": \[".*\/extra1", ".*\/extra2"/, 'both lead sys.path, in order');


=== TEST 7: rust_python_path must name directories
--- http_config
rust_python_path /nonexistent/dir;
--- must_die
--- error_log eval
qr{"rust_python_path": "/nonexistent/dir" is not a directory; give directories to put on sys.path in .*nginx.conf:\d+}


=== TEST 8: rust_python_env is in os.environ before the app is imported
--- http_config
rust_python_env APP_MODE production;
rust_python_env OTHER "two words";
--- config
location / {
    rust_wsgi $TEST_NGINX_APPS/pyinfo.py;
}
--- perl
my $r = http_get('/');
like($r->{body}, qr/"import_time_env": "production"/, 'seen at import time');
like($r->{body}, qr/"request_time_env": "production"/, 'and at request time');
like($r->{body}, qr/"other_env": "two words"/, 'values may contain spaces');
