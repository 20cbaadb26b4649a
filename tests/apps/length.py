"""Responses whose body disagrees with their Content-Length."""


def application(environ, start_response):
    case = environ["PATH_INFO"]
    if case == "/over":
        start_response("200 OK", [("Content-Length", "5")])
        return [b"0123456789"]
    if case == "/under":
        start_response("200 OK", [("Content-Length", "10")])
        return iter([b"01234"])
    if case == "/exact":
        start_response("200 OK", [("Content-Length", "10")])
        return iter([b"01234", b"56789"])
    start_response("404 Not Found", [])
    return [b""]
