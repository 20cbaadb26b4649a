"""For the status page's tests (500-status.t), an ASGI app:
/wait?gate=F awaits (without blocking the loop) until file F exists;
/block?gate=F blocks the whole event loop until it does (time.sleep);
/?status=N answers N; a WebSocket is accepted and echoes."""
import asyncio
import os
import time
from urllib.parse import parse_qs


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            await send({"type": "websocket.send", "text": message.get("text") or ""})
    query = parse_qs(scope["query_string"].decode())
    gate = query.get("gate", [""])[0]
    if scope["path"] == "/wait":
        while not os.path.exists(gate):
            await asyncio.sleep(0.01)
    elif scope["path"] == "/block":
        while not os.path.exists(gate):
            time.sleep(0.01)
    status = int(query.get("status", ["200"])[0])
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"status %d\n" % status})
