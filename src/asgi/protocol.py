"""The asyncio side of rust_asgi: one event loop per nginx worker.

This file is compiled into the module and runs on the loop thread, the only
thread that runs ASGI app code (apart from executors the app starts). The
Rust side (asgi/serving.rs) owns everything that touches nginx: it hands
over new requests, window credit and disconnects through an eventfd this
loop watches, and takes the response through the connection objects
(asgi/io.rs), which validate every message before nginx sees it.

Here live the parts that are about asyncio: the receive and send awaitables,
the app's task, and the lifespan protocol.
"""

import asyncio
import collections

DISCONNECT = "http.disconnect"
# What HttpConn.send returns (asgi/io.rs).
SENT, WAIT, GONE, STARTED = 0, 1, 2, 3
LIFESPAN_SCOPE_ASGI = {"version": "3.0", "spec_version": "2.0"}
# How long a replaced version's lifespan shutdown may take (seconds).
SHUTDOWN_TIMEOUT = 5


def new_loop():
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class ClientDisconnected(OSError):
    """send() after the client went away (what uvicorn raises too)."""


class Http:
    """One HTTP request: the app's receive and send, and its task."""

    __slots__ = ("conn", "loop", "task", "waiter", "waiting_for", "gone", "bodies", "entered")

    def __init__(self, conn, loop):
        self.conn = conn
        self.loop = loop
        self.task = None
        self.waiter = None
        self.waiting_for = None
        self.gone = False
        # The app was called (its task may have been waiting for the
        # lifespan startup, or not have run at all, before).
        self.entered = False
        # Pieces of an unbuffered body that arrived before receive() asked.
        self.bodies = None

    async def receive(self):
        if not self.gone:
            message = self.conn.receive()
            if message is not None:
                return message
            # rust_asgi_request_buffering off: the rest of the body as
            # nginx reads it.
            while self.conn.more_body() and not self.gone:
                if self.bodies:
                    chunk, last = self.bodies.popleft()
                    self.conn.took(len(chunk), last)
                    return {"type": "http.request", "body": chunk, "more_body": not last}
                await self._wait("receive")
            if not self.gone:
                # The body is all read: the next event is the disconnect.
                await self._wait("receive")
        return {"type": DISCONNECT}

    def body(self, chunk, last):
        if self.bodies is None:
            self.bodies = collections.deque()
        self.bodies.append((chunk, last))
        if self.waiting_for == "receive" and not self.waiter.done():
            self.waiter.set_result(None)

    async def send(self, message):
        if self.gone:
            raise ClientDisconnected("the client went away")
        outcome = self.conn.send(message)
        if outcome == SENT:
            return
        if outcome == STARTED:
            # The head goes out with the first body message if that follows
            # in this step of the app; if not, on the loop's next turn.
            self.loop.call_soon(self.conn.flush)
        elif outcome == WAIT:
            # The window is full: wait until nginx has written some.
            await self._wait("send")
        if self.gone:
            raise ClientDisconnected("the client went away")

    async def _wait(self, what):
        self.waiter = self.loop.create_future()
        self.waiting_for = what
        try:
            await self.waiter
        finally:
            self.waiter = None
            self.waiting_for = None

    def credit(self):
        if self.waiting_for == "send" and not self.waiter.done():
            self.waiter.set_result(None)

    def disconnected(self):
        """nginx is done with the request: the response is complete, or
        the client left, or a timeout ended it."""
        self.gone = True
        if self.waiter is not None:
            if not self.waiter.done():
                self.waiter.set_result(None)
        elif self.entered and not self.task.done() and not self.conn.complete():
            # Neither in receive() nor in send(): only a cancel reaches it.
            # An app not called yet hears it from its first receive() (or
            # send()), as one that leaves right after it was.
            self.task.cancel()


class WebSocket:
    """One WebSocket: receive() takes what nginx's thread pushed (the
    connect event first), send() goes to WsConn (asgi/ws.rs)."""

    __slots__ = ("conn", "loop", "task", "events", "waiter", "waiting_for", "gone", "entered")

    def __init__(self, conn, loop):
        self.conn = conn
        self.loop = loop
        self.task = None
        # Set by Serving.serve, as for Http; a WebSocket's app hears of a
        # disconnect from receive() alone.
        self.entered = False
        self.events = collections.deque([{"type": "websocket.connect"}])
        self.waiter = None
        self.waiting_for = None
        self.gone = False

    async def receive(self):
        while not self.events:
            if self.gone:
                return {"type": "websocket.disconnect", "code": 1006}
            await self._wait("receive")
        event = self.events.popleft()
        if event["type"] == "websocket.receive":
            data = event.get("text")
            self.conn.consumed(len(data if data is not None else event["bytes"]))
        return event

    async def send(self, message):
        if self.gone:
            raise ClientDisconnected("the client went away")
        outcome = self.conn.send(message)
        if outcome == WAIT:
            await self._wait("send")
        if self.gone or outcome == GONE:
            raise ClientDisconnected("the client went away")

    _wait = Http._wait
    credit = Http.credit

    def push(self, event):
        self.events.append(event)
        if event["type"] == "websocket.disconnect":
            self.gone = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)


class Lifespan:
    """The lifespan protocol for one loaded version of an app."""

    def __init__(self, app, loop, log):
        self.app = app
        self.loop = loop
        self.log = log
        self.state = {}
        self.supported = True
        self.failed = None
        self.started = loop.create_future()
        self.stopped = loop.create_future()
        self.events = asyncio.Queue()
        self.received = 0
        # Requests running on this version; a replaced version shuts down
        # once its last one is over.
        self.active = 0
        self.replaced = False
        self.task = loop.create_task(self.run())

    async def run(self):
        scope = {"type": "lifespan", "asgi": dict(LIFESPAN_SCOPE_ASGI), "state": self.state}
        try:
            await self.app(scope, self.receive, self.send)
        except BaseException as exc:
            if not self.started.done():
                if self.received == 0:
                    # It raised on the scope type before asking for an
                    # event: an app without lifespan support. The spec says
                    # carry on without it.
                    self.supported = False
                    self.log("info", "rust_asgi: the app does not support the lifespan protocol (%s: %s); serving without it" % (type(exc).__name__, exc))
                    self.started.set_result(None)
                else:
                    self.fail_startup(self.format(exc))
            elif not self.stopped.done():
                self.log("error", "rust_asgi: the app's lifespan raised:\n" + self.format(exc))
                self.stopped.set_result(None)
            return
        for future in (self.started, self.stopped):
            if not future.done():
                future.set_result(None)

    async def receive(self):
        self.received += 1
        return await self.events.get()

    async def send(self, message):
        kind = message.get("type")
        if kind == "lifespan.startup.complete":
            if not self.started.done():
                self.started.set_result(None)
        elif kind == "lifespan.startup.failed":
            if not self.started.done():
                self.fail_startup(message.get("message", "") or "(no message)")
        elif kind in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
            if kind == "lifespan.shutdown.failed":
                self.log("error", "rust_asgi: the app's lifespan shutdown failed: %s" % message.get("message", ""))
            if not self.stopped.done():
                self.stopped.set_result(None)
        else:
            raise RuntimeError("unexpected ASGI message %r in the lifespan protocol" % (kind,))

    def fail_startup(self, message):
        self.failed = message
        self.log("error", "rust_asgi: the app's lifespan startup failed; its requests answer 500 until its code changes:\n" + message)
        self.started.set_result(None)

    @staticmethod
    def format(exc):
        import traceback

        return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip()

    async def startup(self):
        self.events.put_nowait({"type": "lifespan.startup"})
        await self.started

    async def shutdown(self, timeout):
        if not self.supported or self.failed is not None or self.task.done():
            return
        self.events.put_nowait({"type": "lifespan.shutdown"})
        try:
            await asyncio.wait_for(asyncio.shield(self.stopped), timeout)
        except asyncio.TimeoutError:
            self.log("warn", "rust_asgi: the app's lifespan shutdown did not finish within %ss" % timeout)


class Serving:
    """Everything the loop runs, driven by the Rust side (asgi/serving.rs)."""

    def __init__(self, loop, log):
        self.loop = loop
        self.log = log
        # App version -> its Lifespan. A reloaded app gets a new entry and
        # its own startup; the old version's requests finish on the old one.
        self.lifespans = {}
        self.requests = set()

    def start_ticks(self, report, every):
        """Every `every` seconds, reports the loop's tasks and how late the
        tick ran (the loop's lag) to the status page (core/metrics.rs)."""

        def tick(due):
            now = self.loop.time()
            report(len(asyncio.all_tasks(self.loop)), now - due)
            self.loop.call_at(now + every, tick, now + every)

        self.loop.call_soon(tick, self.loop.time())

    def lifespan(self, index, app):
        current = self.lifespans.get(index)
        if current is not None and current.app is app:
            return current
        lifespan = Lifespan(app, self.loop, self.log)
        self.loop.create_task(lifespan.startup())
        self.lifespans[index] = lifespan
        if current is not None:
            current.replaced = True
            self.retire(current)
        return lifespan

    def retire(self, lifespan):
        if lifespan.replaced and lifespan.active == 0:
            lifespan.replaced = False  # once
            self.loop.create_task(lifespan.shutdown(SHUTDOWN_TIMEOUT))

    def http(self, index, app, scope, conn):
        http = Http(conn, self.loop)
        http.task = self.loop.create_task(self.serve(self.lifespan(index, app), scope, http))
        self.requests.add(http.task)
        http.task.add_done_callback(self.requests.discard)
        return http

    def websocket(self, index, app, scope, conn):
        ws = WebSocket(conn, self.loop)
        ws.task = self.loop.create_task(self.serve(self.lifespan(index, app), scope, ws))
        self.requests.add(ws.task)
        ws.task.add_done_callback(self.requests.discard)
        return ws

    async def serve(self, lifespan, scope, http):
        conn = http.conn
        lifespan.active += 1
        try:
            if not lifespan.started.done():
                await lifespan.started
            if lifespan.failed is not None:
                conn.startup_failed()
                return
            if lifespan.supported:
                scope["state"] = lifespan.state.copy()
            http.entered = True
            await lifespan.app(scope, http.receive, http.send)
        except asyncio.CancelledError:
            conn.cancelled()
        except ClientDisconnected:
            conn.cancelled()
        except BaseException as exc:
            conn.raised(exc)
        else:
            conn.returned()
        finally:
            lifespan.active -= 1
            self.retire(lifespan)

    async def shutdown(self, timeout):
        await asyncio.gather(*(l.shutdown(timeout) for l in self.lifespans.values()), return_exceptions=True)
        for task in list(self.requests):
            task.cancel()

    async def stop(self, timeout):
        try:
            await self.shutdown(timeout)
        finally:
            self.loop.stop()
