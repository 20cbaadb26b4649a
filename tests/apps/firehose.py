"""Streams 64 KiB chunks (up to 4 GiB) and reports on close() how much it produced."""
import time

CHUNK = b"x" * 65536


class Firehose:
    def __init__(self, errors):
        self.errors = errors
        self.produced = 0
        self.started = time.monotonic()

    def __iter__(self):
        for _ in range(65536):
            self.produced += len(CHUNK)
            yield CHUNK

    def close(self):
        self.errors.write("firehose: produced %d bytes\n" % self.produced)


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return Firehose(environ["wsgi.errors"])
