"""Reports how the interpreter was set up, as JSON."""
import json
import os
import sys

IMPORT_TIME_ENV = os.environ.get("APP_MODE")


def application(environ, start_response):
    info = {
        "prefix": sys.prefix,
        "base_prefix": sys.base_prefix,
        "executable": sys.executable,
        "fs_encoding": sys.getfilesystemencoding(),
        "utf8_mode": sys.flags.utf8_mode,
        "path_head": sys.path[:3],
        "import_time_env": IMPORT_TIME_ENV,
        "request_time_env": os.environ.get("APP_MODE"),
        "other_env": os.environ.get("OTHER"),
    }
    try:
        import flask
        info["flask"] = flask.__file__
    except ImportError:
        info["flask"] = None
    try:
        import extramod
        info["extramod"] = extramod.WHERE
    except ImportError:
        info["extramod"] = None
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(info).encode()]
