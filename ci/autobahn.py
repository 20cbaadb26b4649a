#!/usr/bin/python3
"""Runs the Autobahn TestSuite's fuzzing client against an echo app served
by rust_asgi (and, with --peers, by uvicorn for comparison), then prints and
writes the per-group summary. Run through ci/autobahn.sh, which installs the
suite (Python 2.7) and builds the module.

Every case must end OK, NON-STRICT or INFORMATIONAL, and its close
behaviour OK or INFORMATIONAL; otherwise the exit status is 1.
"""
import argparse
import collections
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from run import free_port, wait_port  # noqa: E402 (the benchmark's helpers)
NGINX = os.path.join(ROOT, "target/nginx/sbin/nginx")
MODULE = os.path.join(ROOT, "target/nginx/modules/ngx_http_rust_gateway_module.so")
APP = os.path.join(ROOT, "bench/apps/bench_asgi.py")
PASSING = {"OK", "NON-STRICT", "INFORMATIONAL"}
PASSING_CLOSE = {"OK", "INFORMATIONAL"}
# The suite's groups, by the number before the first dot.
GROUPS = {
    "1": "framing", "2": "pings and pongs", "3": "reserved bits", "4": "opcodes", "5": "fragmentation",
    "6": "UTF-8", "7": "close handshake", "9": "limits and performance", "10": "miscellaneous",
    "12": "permessage-deflate, payloads", "13": "permessage-deflate, parameters",
}


def start_rust_asgi(work, python_home, extra, pool=False):
    """nginx with the module on a free port, one worker, serving the echo
    app at /ws (from a pool process with `pool`)."""
    port = free_port()
    prefix = os.path.join(work, "rust_asgi")
    os.makedirs(os.path.join(prefix, "logs"), exist_ok=True)
    conf = os.path.join(prefix, "nginx.conf")
    # Copies, so that a build during the run leaves this nginx alone.
    nginx, module = os.path.join(prefix, "nginx"), os.path.join(prefix, "module.so")
    shutil.copy(NGINX, nginx)
    shutil.copy(MODULE, module)
    user = "user root root;" if os.geteuid() == 0 else ""
    home = "rust_python_home %s;" % python_home if python_home else ""
    if pool:
        home += " rust_pool autobahn processes=1;"
    with open(conf, "w") as f:
        f.write("""
load_module %(module)s;
daemon off;
%(user)s
worker_processes 1;
error_log logs/error.log info;
pid logs/nginx.pid;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path logs/body;
    proxy_temp_path logs/proxy;
    fastcgi_temp_path logs/fastcgi;
    uwsgi_temp_path logs/uwsgi;
    scgi_temp_path logs/scgi;
    %(home)s
    server {
        listen 127.0.0.1:%(port)d;
        location / {
            rust_asgi %(app)s%(pool)s;
            %(extra)s
        }
    }
}
""" % {"module": module, "user": user, "port": port, "home": home, "app": APP, "extra": extra, "pool": " pool=autobahn" if pool else ""})
    proc = subprocess.Popen([nginx, "-p", prefix + "/", "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    return proc, port, os.path.join(prefix, "logs/error.log")


def start_uvicorn(work, venv):
    """uvicorn as its docs recommend it (uvloop, httptools, websockets),
    one worker, permessage-deflate on (its default)."""
    port = free_port()
    log = open(os.path.join(work, "uvicorn.log"), "ab")
    argv = [os.path.join(venv, "bin/uvicorn"), "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
            "--no-access-log", "--app-dir", os.path.dirname(APP), "bench_asgi:app"]
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    return proc, port, os.path.join(work, "uvicorn.log")


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGQUIT if proc.args[0].endswith("/nginx") else signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def case_key(case_id):
    return tuple(int(p) for p in case_id.split("."))


def summarize(index, agent):
    """Per group: how many cases, and the counts of each behaviour and
    close behaviour; the slowest 9.* cases; the failures."""
    cases = index[agent]
    groups = collections.OrderedDict()
    failures = []
    for case_id in sorted(cases, key=case_key):
        r = cases[case_id]
        g = groups.setdefault(case_id.split(".")[0], {"cases": 0, "behavior": collections.Counter(),
                                                      "close": collections.Counter(), "ms": 0})
        g["cases"] += 1
        g["behavior"][r["behavior"]] += 1
        g["close"][r["behaviorClose"]] += 1
        g["ms"] += r.get("duration", 0)
        if r["behavior"] not in PASSING or r["behaviorClose"] not in PASSING_CLOSE:
            failures.append((case_id, r["behavior"], r["behaviorClose"]))
    return groups, failures


def counts(counter):
    return ", ".join("%d %s" % (n, b) for b, n in sorted(counter.items(), key=lambda kv: -kv[1]))


def table(index, agents):
    lines = []
    for agent in agents:
        groups, failures = summarize(index, agent)
        total = sum(g["cases"] for g in groups.values())
        lines.append("%s: %d cases, %d not passing" % (agent, total, len(failures)))
        lines.append("")
        lines.append("| group | cases | behaviour | close behaviour | time, ms |")
        lines.append("|---|---:|---|---|---:|")
        for name, g in groups.items():
            lines.append("| %s %s | %d | %s | %s | %d |" % (name, GROUPS.get(name, ""), g["cases"], counts(g["behavior"]),
                                                         counts(g["close"]), g["ms"]))
        for case_id, behavior, close in failures:
            lines.append("")
            lines.append("NOT PASSING: %s %s (close: %s)" % (case_id, behavior, close))
        lines.append("")
    nine = sorted((c for c in index[agents[0]] if c.startswith("9.")), key=case_key)
    if nine:
        lines.append("Timings of group 9 (ms, as the fuzzing client measured them):")
        lines.append("")
        lines.append("| case | " + " | ".join(agents) + " |")
        lines.append("|---|" + "---:|" * len(agents))
        for c in nine:
            lines.append("| %s | %s |" % (c, " | ".join(str(index[a].get(c, {}).get("duration", "")) for a in agents)))
        lines.append("")
    return "\n".join(lines)


def wait_handshake(port, seconds=60):
    """Until a WebSocket handshake succeeds (a pool answers 503 until its
    process is ready)."""
    import socket
    import time
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                          b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
                if s.recv(64).startswith(b"HTTP/1.1 101"):
                    return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--wstest", required=True, help="the suite's wstest")
    p.add_argument("--work", default=os.path.join(ROOT, "target/autobahn"), help="where reports and logs go")
    p.add_argument("--cases", default="*", help="comma-separated case patterns, e.g. '9.*,12.1.*'")
    p.add_argument("--exclude", default="", help="comma-separated case patterns to leave out")
    p.add_argument("--peers", default="rust_asgi", help="rust_asgi and/or uvicorn, comma-separated")
    p.add_argument("--venv", default="", help="a Python 3 venv with uvicorn (and uvloop) for --peers uvicorn; "
                                              "rust_asgi then runs in it too (rust_python_home)")
    p.add_argument("--location", default="", help="extra directives for rust_asgi's location")
    p.add_argument("--pool", action="store_true", help="serve the app from a rust_pool process (nginx's worker relays the messages)")
    args = p.parse_args()

    peers = [x for x in args.peers.split(",") if x]
    os.makedirs(args.work, exist_ok=True)
    reports = os.path.join(args.work, "reports")
    shutil.rmtree(reports, ignore_errors=True)
    procs, servers, logs = [], [], {}
    try:
        for peer in peers:
            if peer == "rust_asgi":
                proc, port, log = start_rust_asgi(args.work, args.venv, args.location, args.pool)
            elif peer == "uvicorn":
                if not args.venv:
                    sys.exit("--peers uvicorn needs --venv")
                proc, port, log = start_uvicorn(args.work, args.venv)
            else:
                sys.exit("unknown peer %r" % peer)
            procs.append(proc)
            logs[peer] = log
            if not wait_port(port) or (args.pool and peer == "rust_asgi" and not wait_handshake(port)):
                sys.exit("%s did not start; see %s" % (peer, log))
            servers.append({"agent": peer, "url": "ws://127.0.0.1:%d/ws" % port})
        spec = {
            "outdir": reports,
            "servers": servers,
            "cases": args.cases.split(","),
            "exclude-cases": [c for c in args.exclude.split(",") if c],
            "exclude-agent-cases": {},
        }
        spec_path = os.path.join(args.work, "fuzzingclient.json")
        with open(spec_path, "w") as f:
            json.dump(spec, f, indent=2)
        t0 = time.time()
        with open(os.path.join(args.work, "wstest.log"), "wb") as out:
            rc = subprocess.call([args.wstest, "-m", "fuzzingclient", "-s", spec_path], cwd=args.work,
                                 stdout=out, stderr=subprocess.STDOUT)
        took = time.time() - t0
    finally:
        for proc in procs:
            stop(proc)
    if rc != 0:
        sys.exit("wstest failed (%d); see %s" % (rc, os.path.join(args.work, "wstest.log")))
    with open(os.path.join(reports, "index.json")) as f:
        index = json.load(f)
    text = table(index, peers) + "The fuzzing client took %.0f s.\n" % took
    alerts = []
    if "rust_asgi" in logs:
        alerts = [line for line in open(logs["rust_asgi"], errors="replace") if "[alert]" in line or "[crit]" in line
                  or "[emerg]" in line or "panic" in line]
        text += "nginx's error log: %d [alert], [crit] or [emerg] lines.\n" % len(alerts)
    print(text)
    with open(os.path.join(args.work, "summary.md"), "w") as f:
        f.write(text)
    print("reports: %s/index.html; summary: %s/summary.md" % (reports, args.work))
    failing = any(summarize(index, peer)[1] for peer in peers if peer == "rust_asgi")
    sys.exit(1 if failing or alerts else 0)


if __name__ == "__main__":
    main()
