"""The WSGI app every peer serves, byte for byte the same.

/hello   13 bytes
/64k     64 KiB
/upload  reads the request body in 64 KiB chunks (as Django's multipart
         parser does), answers its length
"""

HELLO = b"Hello, world!"
BODY_64K = b"x" * 65536


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/hello":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "13")])
        return [HELLO]
    if path == "/64k":
        start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", "65536")])
        return [BODY_64K]
    if path == "/upload":
        stream, received = environ["wsgi.input"], 0
        while True:
            chunk = stream.read(65536)
            if not chunk:
                break
            received += len(chunk)
        body = str(received).encode()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]
    start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "0")])
    return [b""]
