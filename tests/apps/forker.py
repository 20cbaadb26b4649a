"""An app that forks, as apps (and libraries) do: the child returns into the
server (`return`), or lingers doing the app's own work before returning.
The parent answers with the child's pid. WSGI (`application`) and ASGI
(`app`)."""
import os
import time


def child_work(mode):
    if mode == "linger":
        # The app's own background work; then it returns into the server.
        time.sleep(600)


def application(environ, start_response):
    mode = environ.get("QUERY_STRING", "")
    pid = os.fork()
    if pid == 0:
        child_work(mode)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"child"]
    if mode == "wait":
        os.waitpid(pid, 0)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [("parent of %d" % pid).encode()]


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    mode = scope["query_string"].decode()
    pid = os.fork()
    if pid == 0:
        child_work(mode)
    elif mode == "wait":
        os.waitpid(pid, 0)
    body = b"child" if pid == 0 else ("parent of %d" % pid).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})
