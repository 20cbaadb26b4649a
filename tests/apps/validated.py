"""A varied app wrapped in wsgiref.validate: any PEP 3333 slip by the
server raises AssertionError (a 500 and a traceback in the log)."""
import io
from wsgiref.validate import validator


def app(environ, start_response):
    path = environ["PATH_INFO"]
    stream = environ["wsgi.input"]
    headers = [("Content-Type", "text/plain")]
    if path == "/post":
        first = stream.readline()
        rest = stream.read(int(environ.get("CONTENT_LENGTH") or 0))
        start_response("200 OK", headers)
        return [first, rest]
    if path == "/lines":
        lines = stream.readlines()
        start_response("200 OK", headers)
        return [b"%d lines" % len(lines)]
    if path == "/stream":
        start_response("200 OK", headers)
        return (b"chunk %d\n" % i for i in range(3))
    if path == "/file":
        start_response("200 OK", headers)
        return environ["wsgi.file_wrapper"](io.BytesIO(b"from a file-like object"), 4)
    if path == "/errors":
        environ["wsgi.errors"].write("validated: a line\n")
        environ["wsgi.errors"].writelines(["validated: another\n"])
        environ["wsgi.errors"].flush()
    start_response("200 OK", headers)
    return [b"validated"]


application = validator(app)
