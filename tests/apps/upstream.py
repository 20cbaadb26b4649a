"""One app, as WSGI (`application`) and as ASGI (`app`), that answers the
way an app behind uwsgi_pass or fastcgi_pass talks to nginx: fragments for
SSI, an auth endpoint for auth_request, validators for conditional
requests, file responses for ranges, X-Accel-* instructions, and its
environ. Every route answers the same under both interfaces.

Routes (the query string picks headers where it says so):
  /frag            "[frag <path>]"
  /auth            200 with X-User when X-Token is "good", else 401 with
                   WWW-Authenticate (two of them)
  /cached          ETag and Last-Modified
  /file            the file data.bin, as wsgi.file_wrapper / pathsend
  /ranged          data.bin's bytes from memory, with Accept-Ranges: bytes
  /accel?h=v&...   every query pair as a response header (X-Accel-*),
                   then "app body"
  /chunks?h=v      three chunks (with the query's headers)
  /koi8            "Content-Type: text/html; charset=utf-8", X-Accel-Charset
  /held?wait=F&h=v "first", then (once the file F exists) "second"
  /env             the environ (WSGI) / scope extensions environ (ASGI)
                   as JSON
"""
import asyncio
import json
import os
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data.bin")
LAST_MODIFIED = "Wed, 21 Oct 2015 07:28:00 GMT"


def _query_headers(query):
    return [(k, v) for k, v in urllib.parse.parse_qsl(query, keep_blank_values=True)]


def route(path, query, headers):
    """(status, headers, body parts, file) for a request."""
    leaf = path.rsplit("/", 1)[-1]
    if leaf == "frag":
        return "200 OK", [("Content-Type", "text/plain")], [("[frag %s]" % path).encode()], None
    if leaf == "auth":
        if headers.get("x-token") == "good":
            return "200 OK", [("X-User", "alice"), ("Content-Type", "text/plain")], [b"yes"], None
        return (
            "401 Unauthorized",
            [("WWW-Authenticate", 'Basic realm="app"'), ("WWW-Authenticate", 'Bearer realm="app"'), ("Content-Type", "text/plain")],
            [b"no"],
            None,
        )
    if leaf == "cached":
        return "200 OK", [("Content-Type", "text/plain"), ("ETag", '"v1"'), ("Last-Modified", LAST_MODIFIED)], [b"cached body"], None
    if leaf == "file":
        return "200 OK", [("Content-Type", "application/octet-stream"), ("ETag", '"f1"')], [], DATA
    if leaf == "ranged":
        with open(DATA, "rb") as f:
            data = f.read()
        return "200 OK", [("Content-Type", "application/octet-stream"), ("Accept-Ranges", "bytes")], [data], None
    if leaf == "accel":
        return "200 OK", [("Content-Type", "text/plain")] + _query_headers(query), [b"app body"], None
    if leaf == "chunks":
        parts = [b"a" * 2000, b"b" * 2000, b"c" * 2000]
        return "200 OK", [("Content-Type", "text/plain")] + _query_headers(query), parts, None
    if leaf == "koi8":
        headers_out = [("Content-Type", "text/html; charset=utf-8"), ("X-Accel-Charset", "koi8-r")]
        return "200 OK", headers_out, ["а".encode("utf-8")], None
    return "404 Not Found", [("Content-Type", "text/plain")], [b"no such route"], None


def _held_parts(query):
    """The two parts of /held; the second waits for the test's file."""
    wait = dict(urllib.parse.parse_qsl(query)).get("wait", "")
    headers = [(k, v) for k, v in _query_headers(query) if k != "wait"]
    return [("Content-Type", "text/plain")] + headers, wait


def application(environ, start_response):
    headers = {
        k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")
    }
    path, query = environ["SCRIPT_NAME"] + environ["PATH_INFO"], environ["QUERY_STRING"]
    if path.endswith("/env"):
        body = json.dumps({k: v for k, v in environ.items() if isinstance(v, str)}).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]
    if leaf_is(path, "held"):
        headers_out, wait = _held_parts(query)
        start_response("200 OK", headers_out)

        def held():
            yield b"first\n"
            while not os.path.exists(wait):
                time.sleep(0.01)
            yield b"second\n"
        return held()
    status, headers_out, parts, file = route(path, query, headers)
    start_response(status, headers_out)
    if file:
        return environ["wsgi.file_wrapper"](open(file, "rb"))
    if leaf_is(path, "chunks"):
        return iter(parts)
    return parts


def leaf_is(path, name):
    return path.rsplit("/", 1)[-1] == name


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
    path, query = scope["path"], scope["query_string"].decode("latin-1")
    if path.endswith("/env"):
        body = json.dumps(scope["extensions"]["environ"]).encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})
        return
    if leaf_is(path, "held"):
        headers_out, wait = _held_parts(query)
        raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers_out]
        await send({"type": "http.response.start", "status": 200, "headers": raw})
        await send({"type": "http.response.body", "body": b"first\n", "more_body": True})
        while not os.path.exists(wait):
            await asyncio.sleep(0.01)
        await send({"type": "http.response.body", "body": b"second\n"})
        return
    status, headers_out, parts, file = route(path, query, headers)
    raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers_out]
    await send({"type": "http.response.start", "status": int(status[:3]), "headers": raw})
    if file:
        await send({"type": "http.response.pathsend", "path": file})
        return
    for i, part in enumerate(parts):
        await send({"type": "http.response.body", "body": part, "more_body": i < len(parts) - 1})
    if not parts:
        await send({"type": "http.response.body", "body": b""})
