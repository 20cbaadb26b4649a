"""An ASGI app, to be (wrongly) given to rust_wsgi."""


async def application(scope, receive, send):
    pass
