"""The example app that ci/run.sh serves on http://127.0.0.1:8080/."""
import html
import os
import threading
import time


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
        return countdown()
    if path == "/echo" and environ["REQUEST_METHOD"] == "POST":
        body = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return [body]
    if path == "/download":
        # nginx serves the file; the app's headers (the file name) stay.
        start_response("200 OK", [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Disposition", 'attachment; filename="app.py"'),
            ("X-Accel-Redirect", "/protected/app.py"),
        ])
        return [b""]
    if path != "/":
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found\n"]
    rows = "".join(
        "<tr><td>%s</td><td>%s</td></tr>" % (html.escape(k), html.escape(str(v)))
        for k, v in sorted(environ.items())
    )
    page = f"""<!doctype html><title>ngx-rust-gateway</title>
<h1>Hello from Python inside nginx</h1>
<p>Worker pid {os.getpid()}, Python thread {html.escape(threading.current_thread().name)}.
Try <a href="/stream">/stream</a> or <code>curl -d hi 127.0.0.1:8080/echo</code>.</p>
<table>{rows}</table>
"""
    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
    return [page.encode()]


def countdown():
    for i in range(5, 0, -1):
        yield f"{i}...\n".encode()
        time.sleep(0.5)
    yield b"done\n"
