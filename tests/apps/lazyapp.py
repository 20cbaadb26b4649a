"""An app that imports lazily, as Mercurial's demandimport and
importlib.util.LazyLoader do: the module runs on first attribute access,
in whichever request touches it first. Python 3.11's LazyLoader is not
thread-safe: two threads touching it at once can see it half-run."""
import importlib.util
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lazy"))


def lazy(name):
    spec = importlib.util.find_spec(name)
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    return module


heavy = lazy("heavy")


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"value=%d" % heavy.VALUE]
