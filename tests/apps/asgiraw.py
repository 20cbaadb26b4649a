"""A bare ASGI 3 app for the rust_asgi tests: the scope, the body events,
streaming with backpressure, and every way an app can misbehave."""

import asyncio
import hashlib
import json
import os
import urllib.parse

MARKS = os.environ.get("MARKS", "/tmp")


def mark(name, text):
    with open(os.path.join(MARKS, name), "a") as f:
        f.write(text + "\n")


async def start(send, status=200, headers=((b"content-type", b"text/plain"),)):
    await send({"type": "http.response.start", "status": status, "headers": list(headers)})


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        # No lifespan support, the common way: refuse the scope type.
        raise RuntimeError("only http here")
    path = scope["path"][len(scope["root_path"]):]
    query = scope["query_string"].decode()

    if path == "/scope":
        shown = {k: v for k, v in scope.items() if k not in ("headers", "raw_path", "query_string", "state")}
        shown["headers"] = [[n.decode("latin-1"), v.decode("latin-1")] for n, v in scope["headers"]]
        shown["raw_path"] = scope["raw_path"].decode("latin-1")
        shown["query_string"] = scope["query_string"].decode("latin-1")
        shown["has_state"] = "state" in scope
        shown["loop"] = type(asyncio.get_running_loop()).__module__
        shown["pid"] = os.getpid()
        await start(send, headers=[(b"content-type", b"application/json")])
        await send({"type": "http.response.body", "body": json.dumps(shown).encode()})
    elif path == "/echo":
        # The body as events: their sizes, and the bytes back.
        sizes, body = [], b""
        while True:
            event = await receive()
            assert event["type"] == "http.request", event
            sizes.append(len(event["body"]))
            body += event["body"]
            if not event.get("more_body", False):
                break
        await start(send, headers=[(b"x-events", str(len(sizes)).encode())])
        await send({"type": "http.response.body", "body": body})
    elif path == "/progressive":
        # One response line per http.request event, as each arrives.
        await start(send)
        total = 0
        while True:
            event = await receive()
            if event["type"] != "http.request":
                return
            total += len(event["body"])
            if event["body"]:
                await send({"type": "http.response.body", "body": b"got %d\n" % total, "more_body": True})
            if not event.get("more_body"):
                break
        await send({"type": "http.response.body", "body": b"done %d\n" % total})
    elif path == "/slowread":
        # Takes its time before reading the body at all.
        await asyncio.sleep(float(query or "1"))
        total = 0
        while True:
            event = await receive()
            total += len(event.get("body", b""))
            if not event.get("more_body"):
                break
        await start(send)
        await send({"type": "http.response.body", "body": str(total).encode()})
    elif path == "/upload":
        # An unbuffered body through receive() in a loop: answers its
        # length, sha256 and how many events it came in. slow=N pauses
        # after every N-th event; id=TAG records the start and how the app
        # learned that the client left; hold reads one event, says
        # "holding", then waits on something else.
        params = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
        tag, slow = params.get("id"), int(params.get("slow", 0))
        if tag:
            mark("upload", "start " + tag)
        if "hold" in params:
            event = await receive()
            if event["type"] == "http.disconnect":
                mark("upload", "%s %s" % (event["type"], tag))
                return
            await start(send)
            await send({"type": "http.response.body", "body": b"holding\n", "more_body": True})
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                mark("upload", "cancelled " + tag)
                raise
        digest, total, events = hashlib.sha256(), 0, 0
        while True:
            event = await receive()
            if event["type"] == "http.disconnect":
                mark("upload", "%s %s" % (event["type"], tag))
                return
            digest.update(event["body"])
            total += len(event["body"])
            events += 1
            if slow and events % slow == 0:
                await asyncio.sleep(0.001)
            if not event.get("more_body"):
                break
        await start(send)
        await send({"type": "http.response.body", "body": b"%d %s %d" % (total, digest.hexdigest().encode(), events)})
    elif path == "/stream":
        # n pieces of `size` bytes, as fast as send() lets them go.
        n, size = (int(x) for x in query.split(","))
        await start(send)
        piece = b"x" * size
        for _ in range(n):
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    elif path == "/forever":
        # Streams until the client leaves; records how it learned that.
        await start(send)
        try:
            while True:
                await send({"type": "http.response.body", "body": b"tick\n", "more_body": True})
                await asyncio.sleep(0.05)
        except OSError as exc:
            mark("forever", "send raised " + type(exc).__name__)
        except asyncio.CancelledError:
            mark("forever", "cancelled")
            raise
    elif path == "/wait-disconnect":
        # Answers at once, then waits for the disconnect event.
        await start(send)
        await send({"type": "http.response.body", "body": b"waiting", "more_body": False})
        while True:
            event = await receive()
            if event["type"] != "http.request":
                break
        mark("disconnect", event["type"])
    elif path == "/listen":
        # Never answers; learns about the client leaving from receive().
        await receive()
        event = await receive()
        mark("listen", event["type"])
    elif path == "/sleep":
        await asyncio.sleep(float(query or "1"))
        await start(send)
        await send({"type": "http.response.body", "body": b"slept"})
    elif path == "/boom":
        raise ValueError("boom before the response")
    elif path == "/late-boom":
        await start(send)
        await send({"type": "http.response.body", "body": b"half", "more_body": True})
        raise ValueError("boom after the response started")
    elif path == "/no-response":
        return
    elif path == "/unfinished":
        await start(send)
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
    elif path == "/crlf":
        await start(send, headers=[(b"x-bad", b"a\r\nInjected: yes")])
        await send({"type": "http.response.body", "body": b"never"})
    elif path == "/str-body":
        await start(send)
        await send({"type": "http.response.body", "body": "not bytes"})
    elif path == "/bad-status":
        await start(send, status=99)
    elif path == "/twice":
        await start(send)
        await start(send)
    elif path == "/pathsend":
        assert "http.response.pathsend" in scope["extensions"]
        await start(send)
        await send({"type": "http.response.pathsend", "path": os.path.abspath(__file__)})
    elif path == "/sync-in-thread":
        # A blocking call in the default executor leaves the loop free.
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, __import__("time").sleep, 0.2)
        await start(send)
        await send({"type": "http.response.body", "body": b"from a thread"})
    else:
        await start(send, status=404)
        await send({"type": "http.response.body", "body": b"not found"})
