"""Streams ?n= chunks, ?delay= seconds apart; reports close() on wsgi.errors."""
import time
from urllib.parse import parse_qs


class Chunks:
    def __init__(self, n, delay, errors):
        self.n, self.delay, self.errors = n, delay, errors

    def __iter__(self):
        for i in range(self.n):
            yield b"chunk %d\n" % i
            time.sleep(self.delay)

    def close(self):
        self.errors.write("stream.py: close() called\n")


def application(environ, start_response):
    q = parse_qs(environ.get("QUERY_STRING", ""))
    n = int(q.get("n", ["3"])[0])
    delay = float(q.get("delay", ["0"])[0])
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-Custom", "yes")])
    return Chunks(n, delay, environ["wsgi.errors"])
