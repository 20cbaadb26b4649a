"""A FastAPI app for the rust_asgi tests: a pydantic model, validation
errors, path and query parameters, dependency injection, and a WebSocket
route."""

from fastapi import Depends, FastAPI, WebSocket, WebSocketDisconnect
from pydantic import BaseModel

app = FastAPI()


class Item(BaseModel):
    name: str
    price: float
    tags: list[str] = []


def settings():
    return {"currency": "EUR"}


@app.get("/items/{item_id}")
async def read_item(item_id: int, q: str | None = None, conf: dict = Depends(settings)):
    return {"item_id": item_id, "q": q, "currency": conf["currency"]}


@app.post("/items")
async def create_item(item: Item):
    return {"name": item.name, "total": item.price * 2, "tags": item.tags}


@app.websocket("/ws/{room}")
async def chat(websocket: WebSocket, room: str):
    await websocket.accept()
    try:
        while True:
            text = await websocket.receive_text()
            await websocket.send_json({"room": room, "echo": text})
    except WebSocketDisconnect:
        pass
