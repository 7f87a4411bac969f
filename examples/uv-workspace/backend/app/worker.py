"""A worker run as `python app/worker.py`, as FastAPI's full-stack template runs
its scripts. Python puts app/ on sys.path, not the release directory, and the
app's own package is never installed into the shared venv: `import app.main`
works because apphost puts the release directory on PYTHONPATH."""

import pathlib
import time

import app.main

pathlib.Path("data/worker-started").write_text(f"{app.main.app.title}\n")
while True:
    time.sleep(3600)
