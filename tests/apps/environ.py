"""Answers with the WSGI environ as JSON (values that JSON can carry)."""
import json


def application(environ, start_response):
    shown = {}
    for key, value in environ.items():
        if isinstance(value, (str, bool, int)):
            shown[key] = value
        elif isinstance(value, tuple):
            shown[key] = list(value)
        else:
            shown[key] = "<%s>" % type(value).__name__
    body = json.dumps(shown, sort_keys=True).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
