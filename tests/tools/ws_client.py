"""A WebSocket client for the rust_asgi tests (run with the test venv's
Python, which has the websockets package). Prints one JSON line of what
happened, for the Perl test to check.

    ws_client.py PORT SCENARIO [ARGS...]
"""

import asyncio
import json
import sys

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus


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
        async with connect(base + ("/echo" if scenario == "too-big" else "/raise"), max_size=None) as ws:
            if args:
                await ws.send("y" * int(args[0]))
            try:
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
