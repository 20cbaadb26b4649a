"""Reads wsgi.input the way ?how= says and answers with what it read."""
from urllib.parse import parse_qs


def application(environ, start_response):
    stream = environ["wsgi.input"]
    how = parse_qs(environ.get("QUERY_STRING", "")).get("how", ["read"])[0]
    if how == "read":
        data = stream.read()
    elif how == "chunks":
        parts = []
        while True:
            part = stream.read(7)
            if not part:
                break
            parts.append(part)
        data = b"|".join(parts)
    elif how == "lines":
        data = b"".join(b"[" + line + b"]" for line in stream)
    elif how == "readlines":
        data = b"".join(b"<" + line + b">" for line in stream.readlines())
    elif how == "length":
        data = str(len(stream.read())).encode()
    else:
        data = b"unknown"
    headers = [("Content-Type", "application/octet-stream"),
               ("X-Content-Length", environ.get("CONTENT_LENGTH", "absent"))]
    start_response("200 OK", headers)
    return [data]
