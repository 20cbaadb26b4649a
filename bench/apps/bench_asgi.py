"""The ASGI app every ASGI peer serves, byte for byte the same.

/hello   13 bytes over HTTP
/64k     64 KiB
/upload  reads the request body as it comes, answers its length
/ws      a WebSocket that echoes every message
"""

HELLO = b"Hello, world!"
HELLO_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"text/plain"), (b"content-length", b"13")],
}
HELLO_BODY = {"type": "http.response.body", "body": HELLO}
BIG_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"application/octet-stream"), (b"content-length", b"65536")],
}
BIG_BODY = {"type": "http.response.body", "body": b"x" * 65536}


async def upload(receive, send):
    received = 0
    while True:
        message = await receive()
        received += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    body = str(received).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def app(scope, receive, send):
    if scope["type"] == "http":
        if scope["path"] == "/64k":
            await send(BIG_START)
            await send(BIG_BODY)
        elif scope["path"] == "/upload":
            await upload(receive, send)
        else:
            await send(HELLO_START)
            await send(HELLO_BODY)
    elif scope["type"] == "websocket":
        await receive()    # websocket.connect
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] != "websocket.receive":
                return
            await send({"type": "websocket.send", "text": message.get("text"), "bytes": message.get("bytes")})
    elif scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
