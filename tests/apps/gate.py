"""Reads the whole body, then waits until the file ?gate= names exists
(the test creates it: no guessing how long to wait), then answers the
body's length. Says in wsgi.errors when it starts waiting."""
import os
import time
from urllib.parse import parse_qs


def application(environ, start_response):
    gate = parse_qs(environ.get("QUERY_STRING", "")).get("gate", [""])[0]
    received = len(environ["wsgi.input"].read())
    environ["wsgi.errors"].write("gate: waiting\n")
    environ["wsgi.errors"].flush()
    for _ in range(6000):
        if not gate or os.path.exists(gate):
            break
        time.sleep(0.01)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(received).encode()]
