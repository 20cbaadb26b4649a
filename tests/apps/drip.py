"""Yields one byte at a time, forever (until the client is gone)."""


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])

    def drip():
        while True:
            yield b"x"
    return drip()
