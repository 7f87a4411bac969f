"""Notes: create and list notes; /api/health reports the schema revision."""

from fastapi import Depends, FastAPI
from pydantic import BaseModel
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from notes.settings import database_url

engine = create_engine(database_url(), pool_pre_ping=True)
app = FastAPI(title="notes")


def session():
    with Session(engine) as s:
        yield s


class NoteIn(BaseModel):
    body: str


@app.get("/api/health")
def health(s: Session = Depends(session)):
    revision = s.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
    return {"ok": True, "revision": revision}


@app.post("/api/notes", status_code=201)
def create_note(note: NoteIn, s: Session = Depends(session)):
    row = s.execute(text("INSERT INTO notes (body) VALUES (:b) RETURNING id"), {"b": note.body}).one()
    s.commit()
    return {"id": row.id, "body": note.body}


@app.get("/api/notes")
def list_notes(s: Session = Depends(session)):
    rows = s.execute(text("SELECT id, body FROM notes ORDER BY id")).all()
    return [{"id": r.id, "body": r.body} for r in rows]
