"""WebSocket endpoints for the rust_asgi tests: echo, server push, close
codes, denial, and idle connections."""

import asyncio
import os

MARKS = os.environ.get("MARKS", "/tmp")


def mark(name, text):
    with open(os.path.join(MARKS, name), "a") as f:
        f.write(text + "\n")


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        raise RuntimeError("no lifespan here")
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"plain http"})
        return
    path = scope["path"]
    mark("connect", path)
    event = await receive()
    assert event["type"] == "websocket.connect", event
    if path == "/deny":
        await send({"type": "websocket.close"})
    elif path == "/echo":
        offered = scope["subprotocols"]
        chosen = "superchat" if "superchat" in offered else None
        await send({"type": "websocket.accept", "subprotocol": chosen, "headers": [(b"x-accepted", b"yes")]})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                mark("echo", "disconnect %s %s" % (message["code"], message.get("reason", "")))
                return
            if message.get("text") == "close-me":
                await send({"type": "websocket.close", "code": 4000, "reason": "as asked"})
                return
            if message.get("text") is not None:
                await send({"type": "websocket.send", "text": message["text"]})
            else:
                await send({"type": "websocket.send", "bytes": message["bytes"]})
    elif path == "/push":
        await send({"type": "websocket.accept"})
        n = int(scope["query_string"] or b"5")
        for i in range(n):
            await send({"type": "websocket.send", "text": "push %d" % i})
            await asyncio.sleep(0.02)
        await send({"type": "websocket.close", "code": 4001, "reason": "bye"})
    elif path == "/idle":
        await send({"type": "websocket.accept"})
        message = await receive()
        assert message["type"] == "websocket.disconnect", message
    elif path == "/raise":
        await send({"type": "websocket.accept"})
        raise ValueError("broken websocket handler")
    elif path == "/noaccept":
        return
