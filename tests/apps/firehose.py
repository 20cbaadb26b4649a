"""Streams ?chunks= 64 KiB chunks (default 65536: 4 GiB) and reports on
close() how much it produced."""
import time
from urllib.parse import parse_qs

CHUNK = b"x" * 65536


class Firehose:
    def __init__(self, errors, chunks):
        self.errors = errors
        self.chunks = chunks
        self.produced = 0
        self.started = time.monotonic()

    def __iter__(self):
        for _ in range(self.chunks):
            self.produced += len(CHUNK)
            yield CHUNK

    def close(self):
        self.errors.write("firehose: produced %d bytes\n" % self.produced)


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    chunks = int(parse_qs(environ["QUERY_STRING"]).get("chunks", ["65536"])[0])
    return Firehose(environ["wsgi.errors"], chunks)
