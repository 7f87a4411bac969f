"""A message board installed by Pipenv from Pipfile.lock, its schema made by Flask-Migrate.

The health path names the installed Flask, whether the dev packages are
installed (they are not: pipenv install --deploy installs [packages] only),
and the migration the database is at.
"""

import importlib.metadata
import importlib.util
import os

from flask import Flask, jsonify, request
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import text

app = Flask(__name__)
app.config["SQLALCHEMY_DATABASE_URI"] = os.environ.get("DATABASE_URL", "sqlite:///board.db")
db = SQLAlchemy(app)
migrate = Migrate(app, db)


class Message(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    body = db.Column(db.String(280), nullable=False)
    author = db.Column(db.String(64), nullable=False, server_default="anonymous")


@app.get("/healthz")
def healthz():
    revision = db.session.execute(text("SELECT version_num FROM alembic_version")).scalar()
    return jsonify(
        ok=True,
        flask=importlib.metadata.version("flask"),
        pytest=importlib.util.find_spec("pytest") is not None,
        revision=revision,
        messages=db.session.query(Message).count(),
    )


@app.post("/messages")
def post_message():
    data = request.get_json(force=True)
    message = Message(body=data["body"], author=data.get("author", "anonymous"))
    db.session.add(message)
    db.session.commit()
    return jsonify(id=message.id), 201


@app.get("/messages")
def list_messages():
    rows = db.session.query(Message).order_by(Message.id).all()
    return jsonify([{"id": m.id, "body": m.body, "author": m.author} for m in rows])
