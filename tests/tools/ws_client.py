"""A WebSocket client for the rust_asgi tests (run with the test venv's
Python, which has the websockets package). Prints one JSON line of what
happened, for the Perl test to check.

    ws_client.py PORT SCENARIO [ARGS...]
"""

import asyncio
import base64
import json
import os
import select
import socket
import struct
import sys
import zlib

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus


# Raw frames, for what the websockets package will not send. Only a guard
# against a hang uses the clock.
GUARD = 30
KEY = base64.b64encode(os.urandom(16)).decode()


def handshake(port, path, keys=(KEY,), extra=""):
    """A raw handshake with these Sec-WebSocket-Key headers (and `extra`
    header lines); returns the socket and the response head."""
    s = socket.create_connection(("127.0.0.1", int(port)))
    s.settimeout(GUARD)
    s.sendall(("GET %s HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "%s%sSec-WebSocket-Version: 13\r\n\r\n"
               % (path, "".join("Sec-WebSocket-Key: %s\r\n" % k for k in keys), extra)).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        data = s.recv(1)
        if not data:
            break
        head += data
    return s, head.decode("latin-1")


def frame(opcode, payload, mask=True, length=None, fin=True, rsv1=False):
    """A client frame; `length` claims another payload length."""
    n = len(payload) if length is None else length
    out = bytes([(0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode])
    bit = 0x80 if mask else 0
    if n < 126:
        out += bytes([bit | n])
    elif n < 1 << 16:
        out += bytes([bit | 126]) + struct.pack("!H", n)
    else:
        out += bytes([bit | 127]) + struct.pack("!Q", n)
    if not mask:
        return out + payload
    key = os.urandom(4)
    return out + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def read_frame(s, buf=b""):
    """One server frame: (first byte, payload, what was read past it)."""
    def need(n):
        nonlocal buf
        while len(buf) < n:
            data = s.recv(65536)
            if not data:
                raise EOFError
            buf += data
    need(2)
    n, at = buf[1] & 0x7F, 2
    if n == 126:
        need(4)
        n, at = struct.unpack("!H", buf[2:4])[0], 4
    elif n == 127:
        need(10)
        n, at = struct.unpack("!Q", buf[2:10])[0], 10
    need(at + n)
    return buf[0], buf[at:at + n], buf[at + n:]


def compress(data, wbits=15):
    """A message as a permessage-deflate sender writes it (RFC 7692, 7.2.1)."""
    c = zlib.compressobj(9, zlib.DEFLATED, -wbits)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def deflate(port):
    """permessage-deflate with raw frames: what the server agreed to, that
    its frames are compressed with the window asked for, a compressed
    message in fragments with a ping between them, and the failures."""
    offer = "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover; server_max_window_bits=9\r\n"
    s, head = handshake(port, "/echo", extra=offer)
    out = {"status": int(head.split(" ", 2)[1]), "extensions": None, "echoes": []}
    for line in head.split("\r\n"):
        if line.lower().startswith("sec-websocket-extensions:"):
            out["extensions"] = line.split(":", 1)[1].strip()
    text = ("All work and no play makes Jack a dull boy. " * 2000).encode()
    s.sendall(frame(0x1, compress(text), rsv1=True))
    whole = compress(text + b"!")
    s.sendall(frame(0x1, whole[:100], fin=False, rsv1=True) + frame(0x9, b"ping") + frame(0x0, whole[100:]))
    s.sendall(frame(0x2, b"\x00\x01uncompressed"))
    rest = b""
    for _ in range(4):
        first, payload, rest = read_frame(s, rest)
        if first & 0x0F == 0xA:
            out["pong"] = payload.decode()
            continue
        body = payload
        if first & 0x40:
            # The client's window: 9 bits, as it asked (server_max_window_bits).
            body = zlib.decompressobj(-9).decompress(payload + b"\x00\x00\xff\xff")
        out["echoes"].append({"opcode": first & 0x0F, "compressed": bool(first & 0x40), "wire": len(payload),
                              "same": body in (text, text + b"!", b"\x00\x01uncompressed"), "length": len(body)})
    s.close()
    failures = {
        # 20 MB of zeros in a few kilobytes: over the 16 MB limit.
        "bomb": frame(0x2, compress(b"\x00" * (20 << 20)), rsv1=True),
        "corrupt": frame(0x1, b"\xff\xff\xff\xff", rsv1=True),
        "rsv1 on a ping": frame(0x9, b"p", rsv1=True),
        "rsv1 on a continuation": frame(0x1, compress(b"a"), fin=False, rsv1=True) + frame(0x0, compress(b"b"), rsv1=True),
    }
    out["failed"] = {}
    for name, data in failures.items():
        s, head = handshake(port, "/echo", extra=offer)
        s.sendall(data)
        out["failed"][name] = close_code(s)
        s.close()
    return out


def deflate_off(port):
    """With rust_asgi_websocket_compression off: the offer is declined and
    frames go uncompressed."""
    offer = "Sec-WebSocket-Extensions: permessage-deflate\r\n"
    s, head = handshake(port, "/echo", extra=offer)
    out = {"status": int(head.split(" ", 2)[1]), "declined": "sec-websocket-extensions" not in head.lower()}
    s.sendall(frame(0x1, b"plain " * 100))
    first, payload, _ = read_frame(s)
    out["echo"] = [bool(first & 0x40), payload.decode() == "plain " * 100]
    out["rsv1"] = None
    s.sendall(frame(0x1, compress(b"x"), rsv1=True))
    out["rsv1"] = close_code(s)
    s.close()
    return out


def close_code(s):
    """Reads frames until a close frame; its code, or None at EOF."""
    buf = b""
    while True:
        while len(buf) < 2 or len(buf) < 2 + (buf[1] & 0x7F if buf[1] & 0x7F < 126 else 0):
            data = s.recv(65536)
            if not data:
                return None
            buf += data
        opcode, n, at = buf[0] & 0x0F, buf[1] & 0x7F, 2
        if n == 126:
            n, at = struct.unpack("!H", buf[2:4])[0], 4
        elif n == 127:
            n, at = struct.unpack("!Q", buf[2:10])[0], 10
        while len(buf) < at + n:
            data = s.recv(65536)
            if not data:
                return None
            buf += data
        if opcode == 0x8:
            return struct.unpack("!H", buf[at:at + 2])[0] if n >= 2 else 1005
        buf = buf[at + n:]


def ends(s):
    """Reads until EOF (the server closed); False on a guard timeout."""
    try:
        while s.recv(65536):
            pass
        return True
    except socket.timeout:
        return False
    except OSError:
        return True


def still_open(s):
    """Without waiting: the server has not closed `s`."""
    if not select.select([s], [], [], 0)[0]:
        return True
    try:
        return s.recv(1, socket.MSG_PEEK) != b""
    except OSError:
        return False


def fail(port):
    """The server fails the WebSocket (close 1002, 1007, 1009) and closes
    the TCP connection without waiting for the client's close frame, while
    a connection the app closed normally still waits for the client's."""
    normal, head = handshake(port, "/echo")
    assert " 101 " in head, head
    normal.sendall(frame(0x1, b"close-me"))
    out = {"normal": close_code(normal), "failed": []}
    cases = [
        ("unmasked", frame(0x1, b"hi", mask=False)),
        ("reserved opcode", frame(0x3, b"")),
        ("invalid UTF-8", frame(0x1, b"\xff\xfe")),
        ("too big", frame(0x2, b"x" * 1024, length=17 << 20)),
    ]
    for name, data in cases:
        s, head = handshake(port, "/echo")
        s.sendall(data)
        code = close_code(s)
        closed = ends(s)
        out["failed"].append({"case": name, "code": code, "closed": closed, "normal_open": still_open(normal)})
        s.close()
    # The client answers the normal close at last: then the server closes.
    normal.sendall(frame(0x8, struct.pack("!H", 4000)))
    out["normal_closed"] = ends(normal)
    return out


def statuses(port, path, *sets):
    """The status of a handshake with each set of keys (comma-separated,
    "-" for none)."""
    got = []
    for keyset in sets:
        s, head = handshake(port, path, [k for k in keyset.split(",") if k and keyset != "-"])
        got.append(int(head.split(" ", 2)[1]) if head.startswith("HTTP/") else 0)
        s.close()
    return {"statuses": got}


async def main(port, scenario, *args):
    base = "ws://127.0.0.1:%s" % port
    out = {}
    if scenario == "echo":
        async with connect(base + "/echo", subprotocols=["chat", "superchat"]) as ws:
            out["subprotocol"] = ws.subprotocol
            out["x_accepted"] = ws.response.headers.get("x-accepted")
            await ws.send("hello")
            out["text"] = await ws.recv()
            await ws.send(b"\x00\x01\xff")
            out["bytes"] = list(await ws.recv())
            big = "x" * 1_000_000
            await ws.send(big)
            out["big_ok"] = (await ws.recv()) == big
            pong = await ws.ping(b"are you there")
            await asyncio.wait_for(pong, 5)
            out["pong"] = True
            await ws.send("close-me")
            try:
                await ws.recv()
            except ConnectionClosed as closed:
                out["close_code"] = closed.rcvd.code
                out["close_reason"] = closed.rcvd.reason
    elif scenario == "client-close":
        async with connect(base + "/echo") as ws:
            await ws.send("hello")
            out["text"] = await ws.recv()
            await ws.close(code=4321, reason="client says bye")
    elif scenario == "push":
        async with connect(base + "/push?" + args[0]) as ws:
            got = []
            try:
                while True:
                    got.append(await ws.recv())
            except ConnectionClosed as closed:
                out["close_code"] = closed.rcvd.code
                out["close_reason"] = closed.rcvd.reason
            out["messages"] = got
    elif scenario == "status":
        try:
            async with connect(base + args[0]):
                out["accepted"] = True
        except InvalidStatus as e:
            out["status"] = e.response.status_code
    elif scenario == "leave":
        ws = await connect(base + "/echo")
        await ws.send("one")
        out["text"] = await ws.recv()
        # Gone without a close frame: the TCP connection just ends.
        ws.transport.abort()
    elif scenario in ("too-big", "raise"):
        # Sends a message of ARGS[0] bytes (too-big) or nothing (raise),
        # then reports how the server closed.
        # Not "async with": the server closes the connection, and closing
        # it again after a send it cut short trips an asyncio bug of
        # Python 3.11 (abort() on a transport already gone).
        ws = await connect(base + ("/echo" if scenario == "too-big" else "/raise"), max_size=None)
        try:
            if args:
                # The server fails the connection at the frame's header
                # and closes at once: the send may not finish.
                await ws.send("y" * int(args[0]))
            await ws.recv()
        except ConnectionClosed as closed:
            out["close_code"] = closed.rcvd.code if closed.rcvd else None
    elif scenario == "fastapi":
        async with connect(base + "/api/ws/lobby") as ws:
            await ws.send("hi")
            out["reply"] = json.loads(await ws.recv())
    elif scenario == "wait-close":
        # Says it is open, then waits for the server to close.
        async with connect(base + "/idle") as ws:
            print(json.dumps({"open": 1}), flush=True)
            try:
                await asyncio.wait_for(ws.recv(), 30)
            except ConnectionClosed as closed:
                out["close_code"] = closed.rcvd.code if closed.rcvd else None
                out["close_reason"] = closed.rcvd.reason if closed.rcvd else None
    elif scenario == "fail":
        out = fail(port)
    elif scenario == "deflate":
        out = deflate(port)
    elif scenario == "deflate-off":
        out = deflate_off(port)
    elif scenario == "deflate-client":
        # The websockets package as it comes: it offers permessage-deflate
        # (client_max_window_bits) and compresses what it sends.
        async with connect(base + "/echo", max_size=None) as ws:
            out["extensions"] = ws.response.headers.get("Sec-WebSocket-Extensions")
            out["negotiated"] = [type(e).__name__ for e in ws.protocol.extensions]
            big = "compress me " * 200_000
            await ws.send(big)
            out["big_ok"] = (await ws.recv()) == big
            await ws.send(bytes(range(256)) * 1000)
            out["bytes_ok"] = (await ws.recv()) == bytes(range(256)) * 1000
            for i in range(50):
                await ws.send("message %d" % i)
                assert await ws.recv() == "message %d" % i
            out["many_ok"] = True
    elif scenario == "keys":
        out = statuses(port, *args)
    elif scenario == "many":
        # Opens N idle connections, says so, and holds them until stdin ends.
        n = int(args[0])
        sockets = [await connect(base + "/idle") for _ in range(n)]
        print(json.dumps({"open": len(sockets)}), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        for ws in sockets:
            await ws.close()
        out["closed"] = n
    print(json.dumps(out), flush=True)


asyncio.run(main(*sys.argv[1:]))
