"""App "a": records itself in the shared module and shows who is there."""
import os

import counter


def application(environ, start_response):
    counter.visitors.append("a")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [("%s pid=%d" % (",".join(counter.visitors), os.getpid())).encode()]
