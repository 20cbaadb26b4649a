"""Dies where PATH_INFO says, for the pool tests; anything else answers its pid."""
import ctypes
import os
import time


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/exit":
        os._exit(7)
    if path == "/segv":
        ctypes.string_at(0)
    if path == "/half":
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"first half\n"
        time.sleep(0.3)  # the half is on its way to nginx
        os._exit(9)
    body = ("pid=%d" % os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield body
