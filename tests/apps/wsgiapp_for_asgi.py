"""A WSGI app, to be (wrongly) given to rust_asgi."""


def application(environ, start_response):
    start_response("200 OK", [])
    return [b"wsgi"]
