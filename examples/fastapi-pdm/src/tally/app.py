"""The service: its health path names the installed FastAPI and whether the dev group is installed."""

import importlib.metadata
import importlib.util

from fastapi import FastAPI

app = FastAPI()
counts: dict[str, int] = {}


@app.get("/healthz")
def healthz() -> dict:
    return {
        "ok": True,
        "fastapi": importlib.metadata.version("fastapi"),
        # pdm install --prod: the dev group (pytest, httpx) is not on the host.
        "pytest": importlib.util.find_spec("pytest") is not None,
        # The project itself is not installed into the venv (--no-self): it imports from the release's src/.
        "installed": any(d.metadata["Name"] == "tally" for d in importlib.metadata.distributions()),
    }


@app.post("/count/{name}")
def count(name: str) -> dict:
    counts[name] = counts.get(name, 0) + 1
    return {"name": name, "count": counts[name]}
