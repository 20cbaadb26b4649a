"""An HTTP upload client for the rust_asgi tests of unbuffered request
bodies. Prints one JSON line of what happened, for the Perl test to check.

    upload_client.py PORT stream COUNT MIB URI...
        COUNT uploads of MIB MiB one after the other, the i-th to the i-th
        URI (cycling), each written as fast as the socket takes it while
        the response is read. The app answers "LENGTH SHA256 EVENTS".
        Stops at the first upload that fails.

    upload_client.py PORT reset COUNT URI
        COUNT requests with a 50 MiB body, each sending its head and as
        much body as the socket takes at once, then resetting the
        connection (SO_LINGER 0). URI gets "&id=N".

    upload_client.py PORT reset-held COUNT URI
        The same, but each client sends its head and 64 KiB, waits for
        the app to answer "holding" (it took them and stopped reading),
        then sends on until the socket takes no more.

Only a guard against a hang uses the clock: an upload that makes no
progress either way for GUARD seconds is reported as stalled.
"""

import hashlib
import json
import os
import select
import socket
import struct
import sys

GUARD = 60
PIECE = 1 << 20


def head(uri, length):
    return ("POST %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % (uri, length)).encode()


def upload(port, uri, body):
    """Sends `body` while reading the response; returns (status, response
    body, stalled)."""
    s = socket.create_connection(("127.0.0.1", port))
    s.setblocking(False)
    out = memoryview(head(uri, len(body)) + body)
    response = b""
    while True:
        readable, writable, _ = select.select([s], [s] if out else [], [], GUARD)
        if not readable and not writable:
            s.close()
            return 0, b"", {"sent": len(body) - len(out), "received": len(response)}
        if writable:
            try:
                out = out[s.send(out[:PIECE]):]
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                out = out[:0]
        if readable:
            try:
                data = s.recv(65536)
            except OSError:
                data = b""
            if not data:
                break
            response += data
    s.close()
    head_part, _, rest = response.partition(b"\r\n\r\n")
    status = int(head_part.split(b" ", 2)[1]) if head_part.startswith(b"HTTP/") else 0
    return status, rest, None


def stream(port, count, mib, uris):
    body = os.urandom(mib << 20)
    want = "%d %s" % (len(body), hashlib.sha256(body).hexdigest())
    out = {"done": 0, "events": []}
    for i in range(count):
        status, answer, stalled = upload(port, uris[i % len(uris)], body)
        fields = answer.decode("latin-1").split()
        if stalled is not None or status != 200 or " ".join(fields[:2]) != want:
            out["failed"] = {"upload": i, "uri": uris[i % len(uris)], "status": status, "answer": answer[:200].decode("latin-1"), "stalled": stalled}
            break
        out["done"] += 1
        out["events"].append(int(fields[2]))
    return out


def reset(port, count, uri, held):
    sent = []
    for i in range(count):
        s = socket.create_connection(("127.0.0.1", port))
        first = head("%s&id=%d" % (uri, i), 50 << 20)
        out = memoryview(first + b"r" * (50 << 20))
        if held:
            # A first piece, and nothing more until the app says it holds
            # it; then on until the socket takes no more, as nginx stops
            # reading for the app.
            s.sendall(out[:len(first) + (64 << 10)])
            out = out[len(first) + (64 << 10):]
            for line in s.makefile("rb"):
                if b"holding" in line:
                    break
        s.setblocking(False)
        try:
            while out:
                out = out[s.send(out[:PIECE]):]
        except (BlockingIOError, InterruptedError):
            pass
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
        sent.append(len(first) + (50 << 20) - len(out))
    return {"sent": sent}


def main(port, scenario, *args):
    if scenario == "stream":
        return stream(port, int(args[0]), int(args[1]), args[2:])
    if scenario in ("reset", "reset-held"):
        return reset(port, int(args[0]), args[1], scenario == "reset-held")
    raise SystemExit("unknown scenario " + scenario)


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]), *sys.argv[2:])), flush=True)
