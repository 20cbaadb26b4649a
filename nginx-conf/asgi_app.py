"""The example ASGI app ci/run.sh serves under /asgi/: plain ASGI 3, no
framework, to show what the module hands an app."""

import asyncio
import json

STATE = {}


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            event = await receive()
            if event["type"] == "lifespan.startup":
                scope["state"]["started"] = "at worker start"
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "websocket":
        # An echo: each message comes back as it went.
        await receive()    # websocket.connect
        await send({"type": "websocket.accept"})
        while (event := await receive())["type"] == "websocket.receive":
            await send({"type": "websocket.send", "text": event.get("text"), "bytes": event.get("bytes")})
        return
    path = scope["path"][len(scope["root_path"]):]
    if path == "/stream":
        # Each line reaches the client as it is sent.
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        for i in range(5):
            await send({"type": "http.response.body", "body": b"line %d\n" % i, "more_body": True})
            await asyncio.sleep(0.5)
        await send({"type": "http.response.body", "body": b""})
        return
    body = b""
    while True:
        event = await receive()
        body += event.get("body", b"")
        if not event.get("more_body"):
            break
    shown = {
        "path": scope["path"],
        "root_path": scope["root_path"],
        "query_string": scope["query_string"].decode(),
        "client": scope["client"],
        "lifespan": scope.get("state", {}).get("started"),
        "body": body.decode("utf-8", "replace"),
    }
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": json.dumps(shown, indent=2).encode() + b"\n"})
