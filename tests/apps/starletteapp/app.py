"""A Starlette app for the rust_asgi tests: routes, JSON, forms, uploads,
streaming, files, background tasks and lifespan handlers that leave marks
the test can see (in the directory named by the query or MARKS)."""

import asyncio
import contextlib
import os
import time

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route

HERE = os.path.dirname(os.path.abspath(__file__))
MARKS = os.environ.get("MARKS", "/tmp")


def mark(name, text=""):
    with open(os.path.join(MARKS, name), "a") as f:
        f.write("%s %d\n" % (text, os.getpid()))


@contextlib.asynccontextmanager
async def lifespan(app):
    mark("startup", "started")
    yield {"greeting": "hello from lifespan"}
    mark("shutdown", "stopped")


async def index(request):
    return PlainTextResponse("starlette index")


async def item(request):
    return JSONResponse({
        "loop": type(asyncio.get_running_loop()).__module__,
        "id": request.path_params["item_id"],
        "q": request.query_params.get("q"),
        "root_path": request.scope["root_path"],
        "url": str(request.url_for("item", item_id=7)),
        "greeting": request.state.greeting,
    })


async def form(request):
    data = await request.form()
    out = {}
    for key, value in data.multi_items():
        if hasattr(value, "read"):
            content = await value.read()
            out[key] = {"filename": value.filename, "size": len(content), "head": content[:8].decode("latin-1")}
        else:
            out[key] = value
    return JSONResponse(out)


# /stream?steps=1: each part after the first waits for a request to /next.
NEXT = asyncio.Queue()


async def stream(request):
    n = int(request.query_params.get("n", "5"))
    delay = float(request.query_params.get("delay", "0.2"))
    steps = request.query_params.get("steps") is not None

    async def parts():
        for i in range(n):
            if steps and i:
                await NEXT.get()
            yield ("part %d %.3f\n" % (i, time.time())).encode()
            if not steps:
                await asyncio.sleep(delay)

    return StreamingResponse(parts(), media_type="text/plain")


async def next_part(request):
    NEXT.put_nowait(None)
    return PlainTextResponse("next")


async def file(request):
    return FileResponse(os.path.join(HERE, "payload.txt"), media_type="text/plain")


async def background(request):
    token = request.query_params["token"]
    return PlainTextResponse("queued", background=BackgroundTask(mark, "background", token))


app = Starlette(
    routes=[
        Route("/", index),
        Route("/items/{item_id:int}", item, name="item"),
        Route("/form", form, methods=["POST"]),
        Route("/stream", stream),
        Route("/next", next_part),
        Route("/file", file),
        Route("/background", background),
    ],
    lifespan=lifespan,
)
