#!/usr/bin/python3
"""Side-by-side benchmark of ngx-rust-gateway and what users would run instead.

Run through ci/bench.sh, which installs the peers first. Every peer gets the
same budget of 2 worker processes and serves the same bytes (bench/apps,
bench/cgi-bin, bench/php). Rounds interleave the peers, each measurement after a
warm-up; the tables report medians, ratios to nginx's own `return 200` (or
the same bytes as a static file) and to the classic pairing measured in the
same round, round wins, p50 and p99 latency, and each peer's memory.

The machine is shared and noisy, and wrk runs on the same 2 cores: read the
ratios first and the absolute numbers second.
"""
import argparse
import datetime
import glob
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
NGINX = os.path.join(ROOT, "target/nginx/sbin/nginx")
MODULE = os.path.join(ROOT, "target/nginx/modules/ngx_http_rust_gateway_module.so")
HELLO = b"Hello, world!"

# (workload, what the baseline row is)
WSGI_WORKLOADS = [
    ("hello", "/hello", None, "nginx return 200"),
    ("64k", "/64k", None, "nginx static file"),
    ("upload", "/upload", "post.lua", "nginx reading the body, no app"),
]
CGI_WORKLOADS = [("cgi-sh", "/cgi-bin/hello.sh"), ("cgi-py", "/cgi-bin/hello.py")]
# ASGI peers: HTTP by wrk, WebSocket echo round trips by bench/wsbench.
ASGI_WORKLOADS = [
    ("asgi-hello", "/hello", None, "nginx return 200"),
    ("asgi-64k", "/64k", None, "nginx static file"),
    ("asgi-upload", "/upload", "post.lua", "nginx reading the body, no app"),
    ("ws-echo", "/ws", "wsbench", None),
]
WSBENCH = os.path.join(BENCH, "wsbench/target/release/wsbench")
# PHP peers: php-cgi in a program pool against php-fpm, 2 PHP processes each.
PHP_WORKLOADS = [
    ("php-hello", "/hello.php", None, "nginx return 200"),
    ("php-64k", "/64k.php", None, "nginx static file"),
]
# What each response must be, checked once before measuring.
EXPECTED = {"/hello": HELLO, "/64k": b"x" * 65536, "/upload": b"1048576", "/hello.php": HELLO, "/64k.php": b"x" * 65536}
# Every peer and the kind of workload it serves; a run starts only the
# peers of its workloads' kinds.
PEERS = {
    "rust_wsgi": "wsgi", "rust_pool": "wsgi", "rust_pool-scaling": "wsgi", "uwsgi": "wsgi", "gunicorn": "wsgi", "granian": "wsgi", "mod_wsgi": "wsgi",
    "fcgiwrap": "cgi", "rust_cgi": "cgi",
    "rust_asgi": "asgi", "uvicorn": "asgi", "granian-asgi": "asgi", "uvicorn-alone": "asgi", "granian-asgi-alone": "asgi",
    "rust_pool-php": "php", "rust_pool-php-children": "php", "php-fpm": "php",
}


def started(pid):
    """A process's start time, which tells it from a later one with its PID."""
    try:
        return open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def wait_unix(path, deadline):
    """Until something accepts on the unix socket (a server whose workers
    are still importing refuses connections)."""
    while time.time() < deadline + 10:
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(path)
            return
        except OSError:
            time.sleep(0.05)


class Peer:
    """A server under test: processes it started, a port, its paths."""

    def __init__(self, name, kind, port):
        self.name, self.kind, self.port = name, kind, port
        self.procs = []

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def spawn(self, argv, log, **kwargs):
        with open(log, "ab") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, **kwargs)
        self.procs.append(proc)
        return proc

    def stop(self):
        """Stops the processes it started, by their PIDs, then any child they
        leave behind (fcgiwrap's children outlive their parent's SIGTERM)."""
        rest = {(pid, started(pid)) for pid in self.tree()} - {(p.pid, started(p.pid)) for p in self.procs}
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM if proc.args[0] != NGINX else signal.SIGQUIT)
        for proc in reversed(self.procs):
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for pid, start in rest:
            if start is not None and started(pid) == start:    # not a reused PID
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def tree(self):
        """Every pid of this peer's process trees."""
        children = {}
        for stat in os.listdir("/proc"):
            if stat.isdigit():
                try:
                    fields = open("/proc/%s/stat" % stat).read().rsplit(")", 1)[1].split()
                    children.setdefault(int(fields[1]), []).append(int(stat))
                except OSError:
                    pass
        pids, todo = [], [p.pid for p in self.procs]
        while todo:
            pid = todo.pop()
            pids.append(pid)
            todo.extend(children.get(pid, []))
        return pids

    def memory(self):
        rss = pss = 0
        for pid in self.tree():
            try:
                for line in open("/proc/%d/smaps_rollup" % pid):
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1])
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1])
            except OSError:
                pass
        return rss, pss


class Bench:
    def __init__(self, args):
        self.args = args
        self.work = tempfile.mkdtemp(prefix="rgw-bench-")
        os.chmod(self.work, 0o755)
        # Outside the checkout: worker processes run as nobody.
        shutil.copytree(os.path.join(BENCH, "apps"), self.path("apps"))
        shutil.copytree(os.path.join(BENCH, "cgi-bin"), self.path("cgi-bin"))
        shutil.copytree(os.path.join(BENCH, "php"), self.path("php"))
        os.makedirs(self.path("html"))
        os.makedirs(self.path("tmp"))
        with open(os.path.join(self.work, "html/64k"), "wb") as f:
            f.write(b"x" * 65536)
        for root, dirs, files in os.walk(self.work):
            for d in dirs:
                os.chmod(os.path.join(root, d), 0o755)
        # Sockets and logs of servers running as nobody.
        os.chmod(self.path("tmp"), 0o1777)
        self.peers = []
        self.user = "nobody" if os.geteuid() == 0 else None

    def path(self, *parts):
        return os.path.join(self.work, *parts)

    # ---- peers -------------------------------------------------------------

    def nginx(self, name, kind, server, http=""):
        port = free_port()
        prefix = self.path(name)
        os.makedirs(os.path.join(prefix, "logs"), exist_ok=True)
        conf = os.path.join(prefix, "nginx.conf")
        with open(conf, "w") as f:
            f.write("""
load_module %(module)s;
daemon off;
worker_processes 2;
error_log logs/error.log warn;
pid logs/nginx.pid;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    client_max_body_size 2m;
    client_body_buffer_size 2m;
    client_body_temp_path logs/body;
    proxy_temp_path logs/proxy;
    fastcgi_temp_path logs/fastcgi;
    uwsgi_temp_path logs/uwsgi;
    scgi_temp_path logs/scgi;
    default_type text/plain;
    %(http)s
    server {
        listen 127.0.0.1:%(port)d backlog=4096;
        %(server)s
    }
}
""" % {"module": MODULE, "port": port, "server": server, "http": http})
        peer = Peer(name, kind, port)
        peer.spawn([NGINX, "-p", prefix + "/", "-c", conf], os.path.join(prefix, "logs/stderr.log"))
        return peer

    def start_peers(self, want):
        apps, cgi, sock = self.path("apps"), self.path("cgi-bin"), self.path("tmp")
        venv = self.args.venv
        started = []

        def add(peer):
            started.append(peer)

        add(self.nginx("nginx", "baseline", """
        location = /hello { return 200 "Hello, world!"; }
        location = /64k { root %s; }
        location = /hello.php { return 200 "Hello, world!"; }
        location = /64k.php { alias %s/64k; }
        %s
        """ % (self.path("html"), self.path("html"), read_body_location("/upload", self.path("html")))))
        if "rust_wsgi" in want:
            add(self.nginx("rust_wsgi", "wsgi", "location / { rust_wsgi %s/bench.py; }" % apps))
        if "rust_pool" in want:
            # The same app in two pool processes (as many as nginx workers
            # and as the other peers' processes), reached over FastCGI.
            add(self.nginx("rust_pool", "wsgi", "location / { rust_wsgi %s/bench.py pool=bench; }" % apps,
                           http="rust_pool bench processes=2 threads=8;"))
        if "rust_pool-scaling" in want:
            # The same with scaling on: one process when idle (it shrinks
            # while the other peers are measured), two under load.
            add(self.nginx("rust_pool-scaling", "wsgi", "location / { rust_wsgi %s/bench.py pool=bench; }" % apps,
                           http="rust_pool bench processes=2 min_processes=1 idle_timeout=2s threads=8;"))
        if "uwsgi" in want and shutil.which("uwsgi"):
            s = os.path.join(sock, "uwsgi.sock")
            peer = self.nginx("uwsgi", "wsgi", "location / { include %s; uwsgi_pass unix:%s; }" % (uwsgi_params(), s))
            argv = ["uwsgi", "--plugin", "python3", "--master", "--processes", "2", "--socket", s, "--chmod-socket=666",
                    "--wsgi-file", os.path.join(apps, "bench.py"), "--disable-logging", "--die-on-term"]
            if self.user:
                argv += ["--uid", self.user, "--gid", "nogroup"]
            peer.spawn(argv, self.path("tmp/uwsgi.log"))
            add(peer)
        if "gunicorn" in want and os.path.exists(os.path.join(venv, "bin/gunicorn")):
            s = os.path.join(sock, "gunicorn.sock")
            peer = self.nginx("gunicorn", "wsgi", """location / {
                proxy_pass http://unix:%s; proxy_set_header Host $host; proxy_http_version 1.1; }""" % s)
            argv = [os.path.join(venv, "bin/gunicorn"), "--workers", "2", "--worker-class", "sync", "--bind", "unix:" + s,
                    "--chdir", apps, "--umask", "0", "bench:application"]
            if self.user:
                argv += ["--user", self.user, "--group", "nogroup"]
            peer.spawn(argv, self.path("tmp/gunicorn.log"))
            add(peer)
        if "granian" in want and os.path.exists(os.path.join(venv, "bin/granian")):
            peer = Peer("granian", "wsgi", free_port())
            peer.spawn([os.path.join(venv, "bin/granian"), "--interface", "wsgi", "--workers", "2", "--host", "127.0.0.1",
                        "--port", str(peer.port), "--no-ws", "--log-level", "error", "bench:application"],
                       self.path("tmp/granian.log"), cwd=apps)
            add(peer)
        if "mod_wsgi" in want and os.path.exists("/usr/lib/apache2/modules/mod_wsgi.so"):
            add(self.apache(apps))
        if "fcgiwrap" in want and shutil.which("fcgiwrap"):
            s = os.path.join(sock, "fcgiwrap.sock")
            peer = self.nginx("fcgiwrap", "cgi", """location /cgi-bin/ {
                root %s; include %s; fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
                fastcgi_pass unix:%s; }""" % (self.work, fastcgi_params(), s))
            argv = ["fcgiwrap", "-c", "2", "-s", "unix:" + s]
            peer.spawn(argv, self.path("tmp/fcgiwrap.log"), preexec_fn=drop_to_nobody if self.user else None)
            add(peer)
        if "rust_asgi" in want:
            # The venv's Python, so rust_asgi gets uvloop as uvicorn does.
            add(self.nginx("rust_asgi", "asgi", "location / { rust_asgi %s/bench_asgi.py; }" % apps,
                           http="rust_python_home %s;" % venv))
        for name, server in (("uvicorn", "uvicorn"), ("granian-asgi", "granian")):
            if name not in want or not os.path.exists(os.path.join(venv, "bin", server)):
                continue
            s = os.path.join(sock, name + ".sock")
            peer = self.nginx(name, "asgi", """location / {
                proxy_pass http://unix:%s; proxy_set_header Host $host; proxy_http_version 1.1;
                proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection $http_connection; }""" % s)
            if server == "uvicorn":
                argv = [os.path.join(venv, "bin/uvicorn"), "--workers", "2", "--uds", s, "--log-level", "error",
                        "--no-access-log", "--app-dir", apps, "bench_asgi:app"]
            else:
                argv = [os.path.join(venv, "bin/granian"), "--interface", "asgi", "--workers", "2", "--uds", s,
                        "--log-level", "error", "bench_asgi:app"]
            peer.spawn(argv, self.path("tmp/%s.log" % name), cwd=apps,
                       preexec_fn=drop_to_nobody if self.user else None)
            add(peer)
        # Run alone, as users who pick them often do: no nginx hop.
        for name, server in (("uvicorn-alone", "uvicorn"), ("granian-asgi-alone", "granian")):
            if name not in want or not os.path.exists(os.path.join(venv, "bin", server)):
                continue
            peer = Peer(name, "asgi", free_port())
            if server == "uvicorn":
                argv = [os.path.join(venv, "bin/uvicorn"), "--workers", "2", "--host", "127.0.0.1", "--port", str(peer.port),
                        "--loop", "uvloop", "--http", "httptools", "--log-level", "error", "--no-access-log",
                        "--app-dir", apps, "bench_asgi:app"]
            else:
                argv = [os.path.join(venv, "bin/granian"), "--interface", "asgi", "--workers", "2", "--host", "127.0.0.1",
                        "--port", str(peer.port), "--log-level", "error", "bench_asgi:app"]
            peer.spawn(argv, self.path("tmp/%s.log" % name), cwd=apps,
                       preexec_fn=drop_to_nobody if self.user else None)
            add(peer)
        if "rust_cgi" in want:
            add(self.nginx("rust_cgi", "cgi", "location /cgi-bin/ { root %s; rust_cgi; }" % self.work))
        # PHP: 2 php-cgi processes in a program pool, against nginx ->
        # php-fpm with 2 children (pm = static), as Debian ships both and
        # as their docs configure them.
        php = self.path("php")
        # The same 2 PHP processes as children of one php-cgi
        # (PHP_FCGI_CHILDREN=2), which forks them after PHP started, as
        # php-fpm forks its children: they share its pages. It answers
        # FCGI_GET_VALUES with 2, and gets 2 requests at once.
        php_pools = [
            ("rust_pool-php", "processes=2 env=PHP_FCGI_MAX_REQUESTS=0"),
            ("rust_pool-php-children", "processes=1 env=PHP_FCGI_CHILDREN=2 env=PHP_FCGI_MAX_REQUESTS=0"),
        ]
        for name, options in php_pools:
            if name not in want or not os.path.exists("/usr/bin/php-cgi"):
                continue
            # rust_fastcgi.conf includes rust_fastcgi_params by a path
            # relative to nginx.conf's directory: both go beside it.
            os.makedirs(self.path(name), exist_ok=True)
            for f in ("rust_fastcgi.conf", "rust_fastcgi_params"):
                shutil.copy(os.path.join(ROOT, "nginx-conf", f), self.path(name, f))
            add(self.nginx(name, "php", r"""location ~ \.php$ {
                root %s; include rust_fastcgi.conf; rust_fastcgi_pass php; }""" % php,
                           http="rust_pool php program=/usr/bin/php-cgi %s;" % options))
        if "php-fpm" in want and php_fpm():
            s = os.path.join(sock, "php-fpm.sock")
            peer = self.nginx("php-fpm", "php", r"""location ~ \.php$ {
                root %s; include %s; fastcgi_pass unix:%s; }""" % (php, fastcgi_conf(), s))
            d = self.path("php-fpm")
            conf = os.path.join(d, "php-fpm.conf")
            with open(conf, "w") as f:
                f.write(PHP_FPM_CONF % {"d": d, "sock": s, "user": (
                    "user = nobody\ngroup = nogroup\nlisten.owner = nobody\nlisten.group = nogroup" if self.user else "")})
            # Its own master in the foreground, with Debian's php.ini and
            # conf.d for php-fpm (as php-cgi gets its own, the same files),
            # never Debian's service or its pool.d.
            peer.spawn([php_fpm(), "--nodaemonize", "--fpm-config", conf], os.path.join(d, "stderr.log"))
            add(peer)
        self.peers = started
        for sockname in ("uwsgi.sock", "gunicorn.sock", "fcgiwrap.sock", "uvicorn.sock", "granian-asgi.sock",
                         "php-fpm.sock"):
            deadline = time.time() + 10
            while any(p.name == sockname.rsplit(".", 1)[0] for p in started) and not os.path.exists(os.path.join(sock, sockname)):
                if time.time() > deadline:
                    break
                time.sleep(0.05)
            if os.path.exists(os.path.join(sock, sockname)):
                os.chmod(os.path.join(sock, sockname), 0o666)
                wait_unix(os.path.join(sock, sockname), deadline)
        for peer in started:
            if not wait_port(peer.port):
                sys.exit("%s did not start (port %d)" % (peer.name, peer.port))

    def apache(self, apps):
        port = free_port()
        d = self.path("apache")
        os.makedirs(d, exist_ok=True)
        conf = os.path.join(d, "apache.conf")
        mods = "/usr/lib/apache2/modules"
        user = "User nobody\nGroup nogroup" if self.user else ""
        with open(conf, "w") as f:
            f.write("""
ServerRoot %(d)s
ServerName localhost
Listen 127.0.0.1:%(port)d
PidFile %(d)s/apache.pid
ErrorLog %(d)s/error.log
LogLevel warn
DefaultRuntimeDir %(d)s
Mutex file:%(d)s default
%(user)s
LoadModule mpm_event_module %(mods)s/mod_mpm_event.so
LoadModule authz_core_module %(mods)s/mod_authz_core.so
LoadModule wsgi_module %(mods)s/mod_wsgi.so
StartServers 2
ServerLimit 2
MinSpareThreads 2
MaxSpareThreads 50
ThreadsPerChild 25
MaxRequestWorkers 50
MaxConnectionsPerChild 0
KeepAlive On
MaxKeepAliveRequests 0
KeepAliveTimeout 60
WSGIScriptAlias / %(apps)s/bench.py
<Directory %(apps)s>
    Require all granted
</Directory>
""" % {"d": d, "port": port, "mods": mods, "apps": apps, "user": user})
        peer = Peer("mod_wsgi", "wsgi", port)
        peer.spawn(["/usr/sbin/apache2", "-f", conf, "-DFOREGROUND"], os.path.join(d, "stderr.log"))
        return peer

    # ---- measuring ---------------------------------------------------------

    def check(self, peer, path, post):
        """Checks the answer once with curl before measuring."""
        argv = ["curl", "-s", "-o", "-", "-w", "%{http_code}", peer.url(path)]
        if post:
            argv[1:1] = ["--data-binary", "@-"]
        out = subprocess.run(argv, input=b"a" * 1048576 if post else None, capture_output=True).stdout
        body, code = out[:-3], out[-3:]
        expected = EXPECTED.get(path, HELLO)
        if code != b"200" or body != expected:
            sys.exit("%s answered %s %r to %s, not the expected bytes (logs in %s)" % (
                peer.name, code.decode(), body[:60], path, self.work))

    def wrk(self, peer, path, conns, seconds, script):
        busy = busy_seconds()
        r = self.wrk_only(peer, path, conns, seconds, script)
        # Whole-machine busy CPU time over the requests served: the
        # server's processes, nginx in front of it and the client alike, so
        # a peer that saves CPU in one place and spends it in another shows.
        requests = r["rps"] * seconds
        r["cpu_us"] = (busy_seconds() - busy) * 1e6 / requests if requests else None
        return r

    def wrk_only(self, peer, path, conns, seconds, script):
        if script == "wsbench":
            return self.wsbench(peer, path, conns, seconds)
        argv = ["wrk", "-t1", "-c%d" % conns, "-d%ds" % seconds, "--latency", peer.url(path)]
        if script:
            argv[1:1] = ["-s", os.path.join(BENCH, script)]
        out = subprocess.run(argv, capture_output=True, text=True).stdout
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
        lat = {m.group(1): to_us(m.group(2)) for m in re.finditer(r"^\s+(50|99)%\s+([\d.]+\w+)", out, re.M)}
        errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", out)
        return {"rps": rps, "p50": lat.get("50"), "p99": lat.get("99"), "errors": errors.group(0) if errors else None}

    def wsbench(self, peer, path, conns, seconds):
        out = subprocess.run([WSBENCH, "ws://127.0.0.1:%d%s" % (peer.port, path), str(conns), str(seconds)],
                             capture_output=True, text=True).stdout
        r = json.loads(out)
        return {"rps": r["rps"], "p50": r["p50"], "p99": r["p99"],
                "errors": "%d connections failed" % r["errors"] if r["errors"] else None}

    def run(self):
        a = self.args
        results = {}
        plans = []
        for name, path, script, _ in WSGI_WORKLOADS:
            if name in a.workloads:
                plans.append((name, path, script, [p for p in self.peers if p.kind in ("baseline", "wsgi")]))
        for name, path in CGI_WORKLOADS:
            if name in a.workloads:
                plans.append((name, path, None, [p for p in self.peers if p.kind == "cgi"]))
        for name, path, script, _ in ASGI_WORKLOADS:
            if name in a.workloads:
                kinds = ("baseline", "asgi") if script is None else ("asgi",)
                plans.append((name, path, script, [p for p in self.peers if p.kind in kinds]))
        for name, path, script, _ in PHP_WORKLOADS:
            if name in a.workloads:
                plans.append((name, path, script, [p for p in self.peers if p.kind in ("baseline", "php")]))
        for name, path, script, peers in plans:
            for peer in peers:
                if script != "wsbench":
                    self.check(peer, path, script)
        # A worker with Python and the app loaded, before any load.
        idle_workers = {p.name: worker_rss(p) for p in self.peers if p.name in ("nginx", "rust_wsgi")}
        for rnd in range(a.rounds):
            for name, path, script, peers in plans:
                for conns in a.conns:
                    for peer in peers:
                        self.wrk(peer, path, conns, a.warmup, script)
                        r = self.wrk(peer, path, conns, a.duration, script)
                        results.setdefault(name, {}).setdefault(str(conns), {}).setdefault(peer.name, []).append(r)
                        print("round %d  %-11s c=%-3d %-18s %10.0f req/s  p50 %s  p99 %s  CPU %s/req%s" % (
                            rnd + 1, name, conns, peer.name, r["rps"], fmt_us(r["p50"]), fmt_us(r["p99"]), fmt_us(r["cpu_us"]),
                            "  (%s)" % r["errors"] if r["errors"] else ""), flush=True)
        memory = {p.name: p.memory() for p in self.peers}
        workers = {"idle": idle_workers, "after": {p.name: worker_rss(p) for p in self.peers if p.name in idle_workers}}
        return results, memory, workers


def busy_seconds():
    """CPU time the whole machine has spent busy (not idle or waiting on
    I/O) since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def drop_to_nobody():
    os.setgid(65534)
    os.setuid(65534)


def to_us(text):
    value, unit = float(re.match(r"[\d.]+", text).group(0)), re.sub(r"[\d.]+", "", text)
    return value * {"us": 1, "ms": 1000, "s": 1000000}[unit]


def fmt_us(us):
    if us is None:
        return "-"
    return "%.0f µs" % us if us < 1000 else "%.2f ms" % (us / 1000)


def worker_rss(peer):
    """RSS of one nginx worker of this peer (they are alike)."""
    master = peer.procs[0].pid
    for pid in peer.tree():
        if pid != master:
            for line in open("/proc/%d/status" % pid):
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    return 0


def read_body_location(path, html):
    """nginx's upload baseline at `path` (also bench/instructions.py's):
    it reads the whole body into its buffer, as before handing it to an
    app, then answers without one. The mirror module reads it (into
    client_body_buffer_size, in large reads); the static module finds no
    such file under `html`, and error_page answers. (`return 200` alone
    would discard the body in 4 KiB reads instead, a different job.)"""
    return """location = %(path)s {
            mirror %(path)s-mirror;
            mirror_request_body on;
            root %(html)s;
            error_page 404 405 =200 @read_body;
        }
        location = %(path)s-mirror { internal; return 204; }
        location @read_body { return 200 "1048576"; }""" % {"path": path, "html": html}


def uwsgi_params():
    for path in ("/etc/nginx/uwsgi_params", os.path.join(ROOT, "target/nginx/conf/uwsgi_params")):
        if os.path.exists(path):
            return path
    return write_params("uwsgi_params", "uwsgi_param")


def fastcgi_conf():
    """nginx's fastcgi.conf: fastcgi_params plus SCRIPT_FILENAME, as PHP
    sites include it."""
    for path in ("/etc/nginx/fastcgi.conf", os.path.join(ROOT, "target/nginx/conf/fastcgi.conf")):
        if os.path.exists(path):
            return path
    path = write_params("fastcgi.conf", "fastcgi_param")
    with open(path, "a") as f:
        f.write("fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;\n"
                "fastcgi_param REDIRECT_STATUS 200;\n")
    return path


def php_fpm():
    """Debian's php-fpm binary (php-fpm8.2 on bookworm), or None."""
    found = sorted(glob.glob("/usr/sbin/php-fpm[0-9]*"))
    return found[-1] if found else shutil.which("php-fpm")


# php-fpm's master and one static pool of 2 children on a unix socket in the
# work directory; the rest as Debian's www.conf leaves it (no access log,
# pm.max_requests 0, clear_env yes).
PHP_FPM_CONF = """[global]
pid = %(d)s/php-fpm.pid
error_log = %(d)s/error.log
log_level = warning
daemonize = no

[bench]
%(user)s
listen = %(sock)s
listen.mode = 0660
pm = static
pm.max_children = 2
"""


def fastcgi_params():
    for path in ("/etc/nginx/fastcgi_params",):
        if os.path.exists(path):
            return path
    return write_params("fastcgi_params", "fastcgi_param")


def write_params(name, directive):
    path = os.path.join(tempfile.gettempdir(), "rgw-bench-" + name)
    names = ["QUERY_STRING $query_string", "REQUEST_METHOD $request_method", "CONTENT_TYPE $content_type",
             "CONTENT_LENGTH $content_length", "REQUEST_URI $request_uri", "PATH_INFO $document_uri",
             "DOCUMENT_ROOT $document_root", "SERVER_PROTOCOL $server_protocol", "REMOTE_ADDR $remote_addr",
             "REMOTE_PORT $remote_port", "SERVER_PORT $server_port", "SERVER_NAME $server_name",
             "SCRIPT_NAME $fastcgi_script_name" if directive == "fastcgi_param" else "SCRIPT_NAME \"\"",
             "GATEWAY_INTERFACE CGI/1.1"]
    with open(path, "w") as f:
        f.writelines("%s %s;\n" % (directive, n) for n in names)
    return path


def summarize(results, memory, workers, args):
    """The tables (Markdown) and the machine-readable summary."""
    md, summary = [], {}
    for name, by_conns in results.items():
        classic, base = {"cgi": ("fcgiwrap", None), "asgi": ("uvicorn", "nginx"), "ws": ("uvicorn", None),
                         "php": ("php-fpm", "nginx")}.get(
            name.split("-")[0], ("uwsgi", "nginx"))
        baseline_what = next((w[3] for w in WSGI_WORKLOADS + ASGI_WORKLOADS + PHP_WORKLOADS if w[0] == name), None)
        for conns, by_peer in by_conns.items():
            rounds = len(next(iter(by_peer.values())))
            best = [max(by_peer, key=lambda p: by_peer[p][i]["rps"] if p != base else -1) for i in range(rounds)]
            rows = []
            for peer, runs in by_peer.items():
                rps = [r["rps"] for r in runs]
                row = {
                    "peer": peer,
                    "rps": statistics.median(rps),
                    "p50": statistics.median([r["p50"] for r in runs if r["p50"] is not None] or [0]),
                    "p99": statistics.median([r["p99"] for r in runs if r["p99"] is not None] or [0]),
                    "cpu_us": statistics.median([r["cpu_us"] for r in runs if r.get("cpu_us")] or [0]),
                    "wins": sum(1 for b in best if b == peer) if peer != base else None,
                    "errors": next((r["errors"] for r in runs if r["errors"]), None),
                }
                for key, other in (("x_baseline", base), ("x_classic", classic)):
                    if other in by_peer and other != peer:
                        row[key] = statistics.median([r["rps"] / o["rps"] for r, o in zip(runs, by_peer[other])])
                rows.append(row)
            rows.sort(key=lambda r: -r["rps"])
            summary.setdefault(name, {})[conns] = rows
            title = "%s, %s connection%s" % (name, conns, "" if conns == "1" else "s")
            md.append("### %s\n" % title)
            cols = ["peer", "req/s (median)"]
            if base:
                cols.append("× %s" % baseline_what)
            cols += ["× %s" % classic, "rounds won", "p50", "p99", "CPU per request"]
            md.append("| " + " | ".join(cols) + " |")
            md.append("|" + "---|" * len(cols))
            for r in rows:
                cells = ["**%s**" % r["peer"] if r["peer"].startswith("rust_") else r["peer"], "%.0f" % r["rps"]]
                if base:
                    cells.append("%.2f" % r["x_baseline"] if "x_baseline" in r else "1.00" if r["peer"] == base else "")
                cells.append("%.2f" % r["x_classic"] if "x_classic" in r else ("1.00" if r["peer"] == classic else ""))
                cells.append("" if r["wins"] is None else "%d/%d" % (r["wins"], rounds))
                cells += [fmt_us(r["p50"]), fmt_us(r["p99"]), fmt_us(r["cpu_us"])]
                md.append("| " + " | ".join(cells) + " |")
            errs = [r for r in rows if r["errors"]]
            for r in errs:
                md.append("\n%s reported errors: %s" % (r["peer"], r["errors"]))
            md.append("")
    md.append("### Memory after the run (whole process tree)\n")
    md.append("| peer | RSS | PSS |")
    md.append("|---|---|---|")
    for peer, (rss, pss) in memory.items():
        md.append("| %s | %.1f MiB | %.1f MiB |" % (peer, rss / 1024, pss / 1024))
    for when, label in (("idle", "with Python and the app loaded, before the run"), ("after", "after the run")):
        w = workers.get(when, {})
        if "nginx" in w and "rust_wsgi" in w:
            md.append("\nOne nginx worker %s: %.1f MiB RSS, %.1f MiB more than a plain nginx worker."
                      % (label, w["rust_wsgi"] / 1024, (w["rust_wsgi"] - w["nginx"]) / 1024))
    summary["memory_kib"] = {p: {"rss": m[0], "pss": m[1]} for p, m in memory.items()}
    summary["worker_rss_kib"] = workers
    return "\n".join(md) + "\n", summary


def snapshot_build(bench):
    """Runs a copy of nginx and the module taken now, so that a rebuild
    during the run (ci/build.sh in another shell) cannot mix two builds in
    one table; says which module was measured."""
    global NGINX, MODULE
    d = bench.path("build")
    os.makedirs(d)
    os.chmod(d, 0o755)
    NGINX, MODULE = shutil.copy2(NGINX, d), shutil.copy2(MODULE, d)
    with open(MODULE, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()[:12]


def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.machine())
    return "%d cores (%s), Linux %s" % (os.cpu_count(), cpu, platform.release())


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--duration", type=int, default=3, help="seconds per measurement")
    p.add_argument("--warmup", type=int, default=1, help="seconds of warm-up before each")
    p.add_argument("--conns", type=lambda s: [int(c) for c in s.split(",")], default=[32, 1])
    p.add_argument("--workloads", type=lambda s: s.split(","),
                   default=["hello", "64k", "upload", "cgi-sh", "cgi-py", "asgi-hello", "asgi-64k", "asgi-upload",
                            "ws-echo", "php-hello", "php-64k"])
    p.add_argument("--peers", type=lambda s: s.split(","), default=list(PEERS))
    p.add_argument("--venv", default=os.environ.get("RGW_BENCH_VENV", "/tmp/ngx-rust-gateway-bench-venv"))
    p.add_argument("--out", default=os.path.join(BENCH, "results"), help="the directory the tables go to")
    p.add_argument("--name", default="latest", help="their file names there: NAME.md and NAME.json (default latest)")
    p.add_argument("--keep", action="store_true", help="keep the work directory (configs, logs)")
    args = p.parse_args()
    if args.rounds < 3:
        print("note: fewer than 3 rounds; medians are rough", file=sys.stderr)
    bench = Bench(args)
    build = snapshot_build(bench)
    try:
        kinds = {kind for ws, kind in ((WSGI_WORKLOADS, "wsgi"), (CGI_WORKLOADS, "cgi"), (ASGI_WORKLOADS, "asgi"),
                                        (PHP_WORKLOADS, "php")) for w in ws if w[0] in args.workloads}
        bench.start_peers({p for p in args.peers if PEERS.get(p) in kinds})
        print("peers: " + ", ".join("%s (port %d)" % (p.name, p.port) for p in bench.peers), flush=True)
        results, memory, workers = bench.run()
    finally:
        for peer in bench.peers:
            peer.stop()
    table, summary = summarize(results, memory, workers, args)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    header = ("Measured %s on %s with `%s` (module sha256 %s...).\nwrk -t1 --latency; %d rounds of %d s after %d s of warm-up, peers interleaved; "
              "every peer has 2 worker processes. Ratios are per round, then the median. The machine is shared and "
              "noisy and wrk shares its cores: read the ratios first, the absolute numbers second.\n\n"
              % (stamp, machine(), "ci/bench.sh " + " ".join(sys.argv[1:]), build, args.rounds, args.duration, args.warmup))
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, args.name + ".md"), "w") as f:
        f.write(header + table)
    with open(os.path.join(args.out, args.name + ".json"), "w") as f:
        json.dump({"date": stamp, "machine": machine(), "module_sha256": build, "args": vars(args), "summary": summary, "raw": results}, f, indent=1)
    print("\n" + header + table)
    if not args.keep:
        shutil.rmtree(bench.work, ignore_errors=True)


if __name__ == "__main__":
    main()
