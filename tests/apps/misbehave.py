"""Apps that break the WSGI rules on purpose, by PATH_INFO."""
import sys


def application(environ, start_response):
    case = environ["PATH_INFO"]
    if case == "/noniter":
        start_response("200 OK", [])
        return 42
    if case == "/twice":
        start_response("200 OK", [])
        start_response("200 OK", [])
        return [b"never"]
    if case == "/excinfo":
        start_response("200 OK", [("X-First", "1")])
        try:
            raise ValueError("something failed before the body")
        except ValueError:
            start_response("503 Service Unavailable", [("X-Replaced", "yes")], sys.exc_info())
        return [b"the app's own error page"]
    if case == "/excinfo-late":
        write = start_response("200 OK", [])
        write(b"partial ")
        try:
            raise ValueError("something failed after the head")
        except ValueError:
            start_response("500 Oops", [], sys.exc_info())
        return [b"never"]
    if case == "/headers10k":
        headers = [("X-H%d" % i, "v%d" % i) for i in range(10000)]
        start_response("200 OK", headers)
        return [b"many headers"]
    if case == "/latin1":
        start_response("200 OK", [("X-Name", "caf\u00e9")])
        return [b"ok"]
    if case == "/not-latin1":
        start_response("200 OK", [("X-Name", "\u20ac")])
        return [b"never"]
    start_response("404 Not Found", [])
    return [b""]
