"""Sleeps ?s= seconds (default 2), then answers."""
import time
from urllib.parse import parse_qs


def application(environ, start_response):
    seconds = float(parse_qs(environ.get("QUERY_STRING", "")).get("s", ["2"])[0])
    time.sleep(seconds)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"slept %.1f" % seconds]
