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

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus


# Raw frames, for what the websockets package will not send. Only a guard
# against a hang uses the clock.
GUARD = 30
KEY = base64.b64encode(os.urandom(16)).decode()


def handshake(port, path, keys=(KEY,)):
    """A raw handshake with these Sec-WebSocket-Key headers; returns the
    socket and the response head."""
    s = socket.create_connection(("127.0.0.1", int(port)))
    s.settimeout(GUARD)
    s.sendall(("GET %s HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "%sSec-WebSocket-Version: 13\r\n\r\n" % (path, "".join("Sec-WebSocket-Key: %s\r\n" % k for k in keys))).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        data = s.recv(1)
        if not data:
            break
        head += data
    return s, head.decode("latin-1")


def frame(opcode, payload, mask=True, length=None):
    """A client frame; `length` claims another payload length."""
    n = len(payload) if length is None else length
    out = bytes([0x80 | opcode])
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
