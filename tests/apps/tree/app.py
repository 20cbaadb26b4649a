"""An app whose behaviour lives in a neighbouring package (for directory reload)."""
import os

from pkg import greeting


def application(environ, start_response):
    if environ["PATH_INFO"] == "/slow":
        import time
        time.sleep(1.5)
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-Pid", str(os.getpid()))])
    return [greeting.TEXT.encode()]
