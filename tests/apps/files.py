"""wsgi.file_wrapper cases, by PATH_INFO; the file is ?f= under the html dir."""
import io
import os
from urllib.parse import parse_qs


class NoPythonReads(io.FileIO):
    """A real file whose contents must never be read through Python."""

    def read(self, *args):
        raise RuntimeError("the file was read through Python")

    readinto = read


def application(environ, start_response):
    q = parse_qs(environ["QUERY_STRING"])
    path = os.path.join(os.environ["HTML_DIR"], q.get("f", ["data.bin"])[0])
    case = environ["PATH_INFO"]
    headers = [("Content-Type", "application/octet-stream")]
    if case == "/real":
        f = NoPythonReads(path, "rb")
    elif case == "/offset":
        f = open(path, "rb")
        f.read(10)          # transmission starts at the current position
    elif case == "/limited":
        f = NoPythonReads(path, "rb")
        headers.append(("Content-Length", "100"))
    elif case == "/bytesio":
        f = io.BytesIO(open(path, "rb").read())
    else:
        start_response("404 Not Found", [])
        return [b""]
    start_response("200 OK", headers)
    return environ["wsgi.file_wrapper"](f, 65536)
