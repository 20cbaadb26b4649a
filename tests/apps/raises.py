"""Fails where ?where= says."""


class Body:
    def __init__(self, errors):
        self.errors = errors

    def __iter__(self):
        yield b"first chunk\n"
        raise RuntimeError("boom in the middle of the body")

    def close(self):
        self.errors.write("raises.py: close() called\n")


def application(environ, start_response):
    where = environ.get("QUERY_STRING", "")
    if where == "iter":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Body(environ["wsgi.errors"])
    if where == "status":
        start_response("2OO OK", [])
        return [b"never"]
    if where == "crlf":
        start_response("200 OK", [("X-Evil", "a\r\nSet-Cookie: pwned=1")])
        return [b"never"]
    if where == "str":
        start_response("200 OK", [])
        return ["not bytes"]
    if where == "nostart":
        return [b"no start_response"]
    raise ZeroDivisionError("deliberate failure in raises.py")
