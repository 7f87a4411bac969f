"""A Flask app installed by Poetry: its health path names the installed Flask and what is not installed."""

import importlib.metadata
import importlib.util

from flask import Flask, jsonify

app = Flask(__name__)


@app.get("/healthz")
def healthz():
    return jsonify(
        ok=True,
        flask=importlib.metadata.version("flask"),
        # The dev group is not installed on the host (poetry install --only main).
        pytest=importlib.util.find_spec("pytest") is not None,
    )


@app.get("/")
def index():
    return "Hello from a Poetry app\n"
