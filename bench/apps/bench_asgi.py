"""The ASGI app every ASGI peer serves, byte for byte the same.

/hello   13 bytes over HTTP
/ws      a WebSocket that echoes every message
"""

HELLO = b"Hello, world!"
HELLO_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"text/plain"), (b"content-length", b"13")],
}
HELLO_BODY = {"type": "http.response.body", "body": HELLO}


async def app(scope, receive, send):
    if scope["type"] == "http":
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
