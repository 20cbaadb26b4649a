"""Small behaviours, chosen by PATH_INFO."""
import builtins

# Counts how often this file is imported in this worker.
builtins.rgw_misc_loads = getattr(builtins, "rgw_misc_loads", 0) + 1


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path.endswith("/loads"):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(builtins.rgw_misc_loads).encode()]
    if path.endswith("/status"):
        start_response("299 Custom Reason", [("Content-Type", "text/plain")])
        return [b"custom"]
    if path.endswith("/header-size"):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(len(environ.get("HTTP_X_BIG", ""))).encode()]
    if path.endswith("/errors"):
        environ["wsgi.errors"].write("misc.py: first line\nmisc.py: second ")
        environ["wsgi.errors"].write("line\n")
        environ["wsgi.errors"].flush()
        start_response("200 OK", [])
        return [b"logged"]
    if path.endswith("/write"):
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written ")
        return [b"and returned"]
    if path.endswith("/empty"):
        start_response("204 No Content", [])
        return []
    if path.endswith("/signal"):
        import signal
        try:
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
            result = b"replaced nginx's SIGHUP handler"
        except ValueError as e:
            result = b"refused: " + str(e).encode()
        start_response("200 OK", [])
        return [result]
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"no such path"]
