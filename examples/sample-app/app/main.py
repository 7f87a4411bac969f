"""The sample web app: /, /healthz, /items, /heartbeat (from the Node process), a websocket echo at /ws,
and /events, a Server-Sent Events stream (what an AI endpoint streaming tokens looks like to the proxy)."""

import asyncio
import json
import os
import socket
import time
from pathlib import Path

from fastapi import FastAPI, HTTPException, Query, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from sqlalchemy import select, text

from .db import Item, SessionLocal, engine

ROOT = Path(__file__).resolve().parent.parent


def _release_id() -> str:
    # apphost writes releases/<id>/.apphost-release at upload; absent when run locally.
    marker = ROOT / ".apphost-release"
    if marker.is_file():
        for line in marker.read_text().splitlines():
            if line.startswith("id="):
                return line[3:]
    return "local"


RELEASE = _release_id()

app = FastAPI(title="apphost sample app")


class ItemIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    done: bool = False


def _item(i: Item) -> dict:
    return {"id": i.id, "name": i.name, "done": i.done, "created_at": str(i.created_at)}


@app.get("/")
def index() -> dict:
    # host: which machine answered (several app hosts behind a balancer).
    return {"app": "sample", "release": RELEASE, "port": os.environ.get("PORT", ""), "host": socket.gethostname()}


@app.get("/healthz")
def healthz():
    # Healthy means: the database answers, the migrated table is there, and
    # Alembic has stamped a revision (reported, so a person sees what schema serves).
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            conn.execute(text("SELECT count(*) FROM items"))
            revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except Exception as exc:  # noqa: BLE001 - any database error makes the instance unhealthy
        return JSONResponse(
            {"status": "unhealthy", "database": "error", "error": str(exc)[:200]}, status_code=503
        )
    return {"status": "ok", "release": RELEASE, "database": "ok", "revision": revision}


@app.get("/heartbeat")
def heartbeat():
    # Written by the Node process (heartbeat.js) into shared data.
    try:
        return json.loads((ROOT / "data" / "heartbeat.json").read_text())
    except (OSError, ValueError) as exc:
        return JSONResponse({"error": f"no heartbeat yet: {exc}"[:200]}, status_code=503)


@app.get("/items")
def list_items() -> list[dict]:
    with SessionLocal() as s:
        return [_item(i) for i in s.scalars(select(Item).order_by(Item.id))]


@app.post("/items", status_code=201)
def create_item(body: ItemIn) -> dict:
    with SessionLocal() as s:
        item = Item(name=body.name, done=body.done)
        s.add(item)
        s.commit()
        s.refresh(item)
        return _item(item)


@app.get("/items/{item_id}")
def get_item(item_id: int) -> dict:
    with SessionLocal() as s:
        item = s.get(Item, item_id)
        if item is None:
            raise HTTPException(status_code=404, detail="no such item")
        return _item(item)


@app.get("/events")
async def events(
    count: int = Query(5, ge=1, le=100), interval: float = Query(1.0, ge=0.0, le=10.0)
) -> StreamingResponse:
    # One event every `interval` seconds. X-Accel-Buffering tells Nginx not to
    # buffer this response; Caddy flushes event streams as they come.
    async def stream():
        for n in range(1, count + 1):
            payload = {"n": n, "of": count, "release": RELEASE, "sent": time.time()}
            yield f"id: {n}\ndata: {json.dumps(payload)}\n\n"
            if n < count:
                await asyncio.sleep(interval)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@app.websocket("/ws")
async def ws_echo(ws: WebSocket) -> None:
    await ws.accept()
    try:
        while True:
            await ws.send_text(await ws.receive_text())
    except WebSocketDisconnect:
        pass


# In production the proxy serves static/ itself; this mount is for running locally.
if (ROOT / "static").is_dir():
    app.mount("/static", StaticFiles(directory=ROOT / "static", html=True), name="static")
