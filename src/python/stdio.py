"""sys.stdout, sys.stderr and sys.stdin of the apps' interpreter.

stdout and stderr are real text streams (io.TextIOWrapper over a binary
stream, as mod_wsgi wraps its log), so that apps can write bytes to
`sys.stdout.buffer`, ask for `encoding` or `errors`, and call
`faulthandler.enable()`. What they write becomes nginx error log lines
(`lines`, a LogStream that follows the writing thread: in the request's
context while it serves one). `fileno()` is fd 2, nginx's stderr, which
nginx points at its error log: what a C library or faulthandler writes
there reaches the log too, unformatted. stdin reads as empty.
"""
import io
import os
import sys


class LogWriter(io.RawIOBase):
    """The binary stream under the text stream."""

    def __init__(self, lines, name):
        super().__init__()
        self._lines = lines
        self.name = name

    def writable(self):
        return True

    def write(self, data):
        data = bytes(data)
        self._lines.write(data.decode("utf-8", "backslashreplace"))
        return len(data)

    def flush(self):
        self._lines.flush()

    def fileno(self):
        return 2

    def isatty(self):
        return False


def text_stream(lines, name):
    return io.TextIOWrapper(
        LogWriter(lines, name), encoding="utf-8", errors="backslashreplace", line_buffering=True, write_through=True
    )


def install(stdout_lines, stderr_lines):
    sys.stdout = sys.__stdout__ = text_stream(stdout_lines, "<stdout>")
    sys.stderr = sys.__stderr__ = text_stream(stderr_lines, "<stderr>")
    sys.stdin = sys.__stdin__ = open(os.devnull, "r", encoding="utf-8")
