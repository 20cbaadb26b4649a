"""Sleeps ?s= seconds (default 2), then answers; says so in wsgi.errors first."""
import time
from urllib.parse import parse_qs


def application(environ, start_response):
    seconds = float(parse_qs(environ.get("QUERY_STRING", "")).get("s", ["2"])[0])
    # Tests wait for this line (in the error log) to know the request is
    # inside the app, instead of guessing how long that takes.
    environ["wsgi.errors"].write("slow: sleeping %.1f s\n" % seconds)
    time.sleep(seconds)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"slept %.1f" % seconds]
