#!/usr/bin/python3
"""Instructions per request on the hot path, counted by callgrind.

Run through ci/bench-instructions.sh. Wall-clock benchmarks on a shared
2-core machine move by 10-20% from run to run; instruction counts move by
about 1%, so a change that makes the per-request path heavier shows
here even when wrk cannot see it.

nginx runs in one process (master_process off) under callgrind, with
rust_wsgi_spin 0 (spinning would count the wait). For each workload a
client sends warm-up requests, the counters are zeroed, then it sends N
requests on one keep-alive connection and the counts are dumped per
thread: nginx's event-loop thread (thread 1) and every other thread (the
Python threads). The baseline is nginx's own `return 200` in the same
process.

The pool's rows (hello, and the upload a tenth as many times) need
nginx's master (which starts the pool's supervisor), so they run in a
second nginx, whole under callgrind: one worker, one pool process. callgrind_control cannot reach processes that
valgrind follows through fork, so the count is a difference: the totals
each process writes when it exits after a short run and after a run of N
more requests, divided by N. The supervisor needs pidfd_open(2), which
valgrind 3.19 does not know; bench/pidfd-shim.c, preloaded, stands in for
it (measurement only).
"""
import argparse
import glob
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

from run import read_body_location

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
NGINX = os.path.join(ROOT, "target/nginx/sbin/nginx")
MODULE = os.path.join(ROOT, "target/nginx/modules/ngx_http_rust_gateway_module.so")
WORK = tempfile.mkdtemp(prefix="rgw-instructions-")

# name, rust_wsgi's path, nginx's own path for the same bytes (what
# bench/run.py compares with), request body, expected response body
WORKLOADS = [
    ("hello", "/hello", "/return", None, b"Hello, world!"),
    ("64k", "/64k", "/static/64k", None, b"x" * 65536),
    ("upload 1 MiB", "/upload", "/read", b"a" * 1048576, b"1048576"),
]

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Client:
    """One keep-alive HTTP/1.1 connection that checks every answer."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.buf = b""

    def get(self, path, body, expected):
        head = "%s %s HTTP/1.1\r\nHost: localhost\r\n" % ("POST" if body else "GET", path)
        if body:
            head += "Content-Length: %d\r\nContent-Type: application/octet-stream\r\n" % len(body)
        self.sock.sendall(head.encode() + b"\r\n" + (body or b""))
        while b"\r\n\r\n" not in self.buf:
            self.recv()
        header, self.buf = self.buf.split(b"\r\n\r\n", 1)
        self.header = header
        length = int(re.search(rb"(?im)^content-length:\s*(\d+)", header).group(1))
        while len(self.buf) < length:
            self.recv()
        answer, self.buf = self.buf[:length], self.buf[length:]
        if not header.startswith(b"HTTP/1.1 200") or answer != expected:
            sys.exit("%s answered %r..., not the expected bytes" % (path, (header + answer)[:80]))

    def last_header(self, name):
        """A header of the last response."""
        return re.search(rb"(?im)^" + name + rb":\s*([^\r\n]*)", self.header).group(1)

    def recv(self):
        data = self.sock.recv(1 << 20)
        if not data:
            sys.exit("the server closed the connection (its error log: %s)" % os.path.join(WORK, "logs/error.log"))
        self.buf += data


def callgrind(pid, *args):
    subprocess.run(["callgrind_control", *args, str(pid)], check=True, capture_output=True, timeout=120)


def thread_counts(pattern, what):
    """{thread number: instructions} from the callgrind files matching
    `pattern` (one per thread, named ...-NN), waiting until they are
    written whole; exits naming `what` if none comes."""
    deadline = time.time() + 60
    while True:
        paths = sorted(glob.glob(pattern))
        try:
            counts = {int(p.rsplit("-", 1)[1]): int(re.search(r"^totals: (\d+)", open(p).read(), re.M).group(1))
                      for p in paths}
            if counts:
                return counts, paths
        except (AttributeError, OSError):
            pass    # a file still being written
        if time.time() > deadline:
            sys.exit("callgrind wrote no counts for %s" % what)
        time.sleep(0.2)


def totals(out, dump):
    """Instructions in the files of dump number `dump`: (nginx thread,
    other threads). callgrind writes them after callgrind_control returns."""
    counts, paths = thread_counts("%s.%d-*" % (out, dump), "dump %d" % dump)
    for p in paths:
        os.unlink(p)
    return counts.get(1, 0), sum(c for t, c in counts.items() if t != 1)


def pool_run(work, shim, requests, path, body, expected):
    """Starts nginx with a one-process pool under callgrind, sends
    `requests` requests for `path` on one connection, stops nginx and
    returns the instructions of its worker and of the pool process, as
    each counted them at its exit."""
    port = free_port()
    with open(os.path.join(work, "nginx.conf"), "w") as f:
        f.write("""
load_module %(module)s;
daemon off;
worker_processes 1;
env PYTHONHASHSEED=0;
error_log logs/error.log warn;
pid logs/nginx.pid;
events { worker_connections 64; }
http {
    access_log off;
    keepalive_requests 1000000;
    client_max_body_size 2m;
    client_body_buffer_size 2m;
    client_body_temp_path logs/body;
    rust_pool bench processes=1;
    server {
        listen 127.0.0.1:%(port)d;
        location / {
            rust_wsgi %(work)s/apps/bench.py pool=bench;
            add_header X-Pids "$pid $rust_pid";
        }
    }
}
""" % {"module": MODULE, "port": port, "work": work})
    for old in glob.glob(os.path.join(work, "cg.*")):
        os.unlink(old)
    env = dict(os.environ, LD_PRELOAD=shim)
    server = subprocess.Popen(
        ["valgrind", "--tool=callgrind", "--separate-threads=yes", "--callgrind-out-file=" + os.path.join(work, "cg.%p"),
         NGINX, "-p", work + "/", "-c", "nginx.conf"],
        stdout=open(os.path.join(work, "valgrind.log"), "w"), stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.time() + 120
        while True:
            try:
                client = Client(port)
                client.get("/hello", None, b"Hello, world!")
                break
            except (OSError, SystemExit):
                if time.time() > deadline or server.poll() is not None:
                    sys.exit("the pool did not start under valgrind (see %s)" % work)
                time.sleep(0.5)
        for _ in range(requests):
            client.get(path, body, expected)
        worker, pool = (int(p) for p in client.last_header(b"x-pids").split())
        client.sock.close()
    finally:
        server.send_signal(3)   # SIGQUIT: a graceful stop, so every process writes its counts
        server.wait(timeout=120)

    def total(pid):
        return sum(thread_counts(os.path.join(work, "cg.%d-*" % pid), "process %d (see %s)" % (pid, work))[0].values())
    return total(worker), total(pool)


def pool_counts(work, requests, warmup, path, body, expected):
    """Instructions per pool request: (nginx's worker, the pool process)."""
    shim = os.path.join(work, "pidfd-shim.so")
    subprocess.run(["cc", "-shared", "-fPIC", "-O2", "-o", shim, os.path.join(BENCH, "pidfd-shim.c"), "-ldl", "-lpthread"],
                   check=True)
    # Processes of the pool run as nobody and write their counts here.
    os.chmod(work, 0o777)
    short = pool_run(work, shim, warmup, path, body, expected)
    long = pool_run(work, shim, warmup + requests, path, body, expected)
    return tuple((b - a) / requests for a, b in zip(short, long))


def main():
    global NGINX, MODULE
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--out", default=os.path.join(BENCH, "results"))
    p.add_argument("--nginx", default=NGINX, help="the nginx binary to measure (default: ci/build.sh's)")
    p.add_argument("--module", default=MODULE, help="the module to measure (default: ci/build.sh's)")
    args = p.parse_args()
    NGINX, MODULE = os.path.abspath(args.nginx), os.path.abspath(args.module)

    work = WORK
    os.makedirs(os.path.join(work, "logs"))
    shutil.copytree(os.path.join(BENCH, "apps"), os.path.join(work, "apps"))
    os.makedirs(os.path.join(work, "html"))
    with open(os.path.join(work, "html/64k"), "wb") as f:
        f.write(b"x" * 65536)
    port = free_port()
    with open(os.path.join(work, "nginx.conf"), "w") as f:
        f.write("""
load_module %(module)s;
daemon off;
master_process off;
error_log logs/error.log warn;
pid logs/nginx.pid;
events { worker_connections 64; }
http {
    access_log off;
    keepalive_requests 1000000;
    client_max_body_size 2m;
    client_body_buffer_size 2m;
    client_body_temp_path logs/body;
    rust_wsgi_spin 0;
    server {
        listen 127.0.0.1:%(port)d;
        location = /return { return 200 "Hello, world!"; }
        location /static/ { alias %(work)s/html/; }
        %(read_body)s
        location / { rust_wsgi %(work)s/apps/bench.py; }
    }
}
""" % {"module": MODULE, "port": port, "work": work, "read_body": read_body_location("/read", os.path.join(work, "html"))})
    out = os.path.join(work, "cg.out")
    server = subprocess.Popen(
        # Instrumenting from the start makes Python's start-up under
        # valgrind crawl; it is switched on once nginx answers.
        ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--separate-threads=yes", "--callgrind-out-file=" + out,
         NGINX, "-p", work + "/", "-c", "nginx.conf"],
        stdout=open(os.path.join(work, "valgrind.log"), "w"), stderr=subprocess.STDOUT)
    rows = []
    try:
        deadline = time.time() + 60
        while True:
            try:
                client = Client(port)
                break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    sys.exit("nginx did not start under valgrind (see %s)" % work)
                time.sleep(0.2)
        client.get("/hello", None, b"Hello, world!")
        callgrind(server.pid, "-i", "on")
        dump = 0
        for name, path, baseline, body, expected in WORKLOADS:
            counts = []
            for p in (baseline, path):
                for _ in range(args.warmup):
                    client.get(p, body, expected)
                callgrind(server.pid, "-z")
                for _ in range(args.requests):
                    client.get(p, body, expected)
                # Let the threads finish what they do after answering
                # (dropping the request's objects) before counting.
                time.sleep(0.5)
                callgrind(server.pid, "-d")
                dump += 1
                counts.append(totals(out, dump))
            (nginx, _), (main, other) = counts
            row = (name, nginx / args.requests, main / args.requests, other / args.requests)
            rows.append(row)
            print("%-13s nginx alone %9.0f, rust_wsgi %9.0f instructions/request (nginx thread %.0f, Python threads %.0f)"
                  % (row[0], row[1], row[2] + row[3], row[2], row[3]), flush=True)
    finally:
        server.terminate()
        server.wait()
    # The pool's rows: hello as many times as the others, the upload a
    # tenth as often (each is a MiB through valgrind, twice).
    pool_rows = []
    for (name, path, _, body, expected), requests, warmup in (
            (WORKLOADS[0], args.requests, args.warmup),
            (WORKLOADS[2], max(args.requests // 10, 1), max(args.warmup // 10, 1))):
        worker, pool = pool_counts(work, requests, warmup, path, body, expected)
        nginx = next(r[1] for r in rows if r[0] == name)
        pool_rows.append(("pool " + name, nginx, worker, pool, requests, warmup))
        print("%-13s nginx alone %9.0f, rust_pool %9.0f instructions/request (nginx's worker %.0f, the pool process %.0f)"
              % ("pool " + name, nginx, worker + pool, worker, pool), flush=True)
    lines = ["Instructions per request, counted by callgrind (`ci/bench-instructions.sh`): %d requests on one "
             "keep-alive connection after %d of warm-up, nginx in one process. \"nginx alone\" serves the same "
             "bytes itself (`return 200`, a static file, an upload read into its buffer and answered without an app); the upload is read in 64 KiB chunks. Stable to about 1%% between runs, "
             "unlike wall-clock numbers. Valgrind counts a large memcpy (`rep movsb`) once per byte, so copies of "
             "bodies weigh heavily here.\n" % (args.requests, args.warmup),
             "| workload | nginx alone | rust_wsgi | × nginx alone | on nginx's thread | on Python threads |",
             "|---|---|---|---|---|---|"]
    for name, nginx, main, other in rows:
        lines.append("| %s | %.0f | %.0f | %.2f | %.0f | %.0f |" % (name, nginx, main + other, (main + other) / nginx, main, other))
    lines += ["", "The pool (`rust_wsgi ... pool=`, one pool process), counted as the difference between a run of "
              "N requests and one of M more, each process's totals at its exit:\n",
              "| workload | N, M | nginx alone | rust_pool | × nginx alone | in nginx's worker | in the pool process |",
              "|---|---|---|---|---|---|---|"]
    for name, nginx, worker, pool, requests, warmup in pool_rows:
        lines.append("| %s | %d, %d | %.0f | %.0f | %.2f | %.0f | %.0f |"
                     % (name, warmup, requests, nginx, worker + pool, (worker + pool) / nginx, worker, pool))
    table = "\n".join(lines) + "\n"
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "instructions.md"), "w") as f:
        f.write(table)
    print("\n" + table)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
