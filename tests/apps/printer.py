"""Writes to stdout and stderr at import time and while serving."""
import logging
import sys

print("printer.py: printed at import")


def application(environ, start_response):
    print("printer.py: printed while serving")
    sys.stderr.write("printer.py: partial ")
    sys.stderr.write("line to stderr\n")
    logging.getLogger("printer").warning("printer.py: a logging warning")
    start_response("200 OK", [])
    return [b"printed"]
