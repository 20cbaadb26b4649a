"""Keeps 20 MB more per request, for the max_rss tests; answers its pid."""
import os

KEPT = []


def application(environ, start_response):
    KEPT.append(bytearray(20 << 20))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [("pid=%d" % os.getpid()).encode()]
