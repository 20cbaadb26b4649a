#!/usr/bin/python3
"""The routes of tests/apps/upstream.py as a CGI program."""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "apps"))
import upstream  # noqa: E402

out = sys.stdout.buffer
path = os.environ.get("SCRIPT_NAME", "") + os.environ.get("PATH_INFO", "")
if path.endswith("/env"):
    out.write(b"Content-Type: application/json\r\n\r\n" + json.dumps(dict(os.environ)).encode())
    sys.exit(0)
if upstream.leaf_is(path, "held"):
    import time
    headers_out, wait = upstream._held_parts(os.environ.get("QUERY_STRING", ""))
    out.write(("".join("%s: %s\r\n" % h for h in headers_out) + "\r\n").encode("latin-1"))
    out.write(b"first\n")
    out.flush()
    while not os.path.exists(wait):
        time.sleep(0.01)
    out.write(b"second\n")
    sys.exit(0)
headers = {k[5:].replace("_", "-").lower(): v for k, v in os.environ.items() if k.startswith("HTTP_")}
status, headers_out, parts, file = upstream.route(path, os.environ.get("QUERY_STRING", ""), headers)
if file:
    with open(file, "rb") as f:
        parts = [f.read()]
if not any(k.lower() == "content-length" for k, _ in headers_out):
    headers_out = headers_out + [("Content-Length", str(sum(len(p) for p in parts)))]
head = "Status: %s\r\n" % status + "".join("%s: %s\r\n" % h for h in headers_out) + "\r\n"
out.write(head.encode("latin-1"))
for part in parts:
    out.write(part)
    out.flush()
