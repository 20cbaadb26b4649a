"""For the status page's tests (500-status.t): answers the status ?status=
names (200 by default), after sleeping ?ms= milliseconds and after waiting
until the file ?gate= names exists (the test creates it: no guessing how
long to wait)."""
import os
import time
from urllib.parse import parse_qs


def application(environ, start_response):
    query = parse_qs(environ.get("QUERY_STRING", ""))
    gate = query.get("gate", [""])[0]
    while gate and not os.path.exists(gate):
        time.sleep(0.01)
    time.sleep(int(query.get("ms", ["0"])[0]) / 1000)
    status = query.get("status", ["200"])[0]
    start_response(status + " X", [("Content-Type", "text/plain")])
    return [b"status " + status.encode() + b"\n"]
