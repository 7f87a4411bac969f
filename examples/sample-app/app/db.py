"""Database access: SQLAlchemy over DATABASE_URL, SQLite (shared/data/app.db) or Postgres.

apphost writes DATABASE_URL into the env file; on Postgres also the pool
settings DB_POOL_SIZE, DB_MAX_OVERFLOW, DB_POOL_TIMEOUT and DB_POOL_RECYCLE
(apphost:database.pool).
"""

import os

from sqlalchemy import Boolean, DateTime, Integer, String, create_engine, event, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

# Relative to the release directory, where data/ links to the shared data directory.
DATABASE_URL = os.environ.get("DATABASE_URL", "sqlite:///data/app.db")


def _pool_settings() -> dict:
    if DATABASE_URL.startswith("sqlite"):
        return {}
    return {
        "pool_size": int(os.environ.get("DB_POOL_SIZE", "5")),
        "max_overflow": int(os.environ.get("DB_MAX_OVERFLOW", "10")),
        "pool_timeout": int(os.environ.get("DB_POOL_TIMEOUT", "30")),
        "pool_recycle": int(os.environ.get("DB_POOL_RECYCLE", "1800")),
    }


engine = create_engine(DATABASE_URL, pool_pre_ping=True, **_pool_settings())

if engine.dialect.name == "sqlite":

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection, _record):
        # WAL lets the web workers, the worker and a migration read while one writes;
        # busy_timeout waits for a lock instead of failing at once.
        cur = dbapi_connection.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=5000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()


SessionLocal = sessionmaker(bind=engine, expire_on_commit=False)


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    created_at: Mapped[object] = mapped_column(DateTime, server_default=func.current_timestamp())
    # Added by migration 0002.
    done: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="0")
