"""An ASGI app whose lifespan startup fails."""


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        event = await receive()
        if event["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.failed", "message": "the database is not there"})
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"should not run"})
