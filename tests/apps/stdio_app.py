"""An app that uses sys.stdout and sys.stderr as the real text streams
they are elsewhere: bytes through .buffer, faulthandler on stderr's fd,
their encoding and errors, and an empty stdin."""
import faulthandler
import io
import sys

faulthandler.enable()
sys.stdout.buffer.write(b"stdio: bytes at import\n")


def application(environ, start_response):
    sys.stdout.buffer.write(b"stdio: bytes while serving\n")
    print("stdio: text while serving", flush=True)
    if environ.get("QUERY_STRING") == "dump":
        faulthandler.dump_traceback(file=sys.stderr)
    info = "%s %s %s %d %d %r" % (
        sys.stdout.encoding,
        sys.stderr.errors,
        isinstance(sys.stdout, io.TextIOWrapper),
        sys.stderr.fileno(),
        faulthandler.is_enabled(),
        sys.stdin.read(),
    )
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [info.encode()]
