"""Background worker: every few seconds, report how many items are open. Stops cleanly on SIGTERM."""

import logging
import os
import signal
import threading

from sqlalchemy import func, select

from app.db import Item, SessionLocal

logging.basicConfig(level=logging.INFO, format="%(asctime)s worker %(levelname)s %(message)s")
log = logging.getLogger("worker")
stop = threading.Event()


def _stop(signum, _frame):
    log.info("signal %s: stopping", signum)
    stop.set()


def tick() -> None:
    with SessionLocal() as s:
        open_items = s.scalar(select(func.count()).select_from(Item).where(Item.done.is_(False)))
    log.info("open items: %s", open_items)


def main() -> None:
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    interval = float(os.environ.get("WORKER_INTERVAL", "10"))
    log.info("started, interval %.1fs", interval)
    while not stop.is_set():
        try:
            tick()
        except Exception as exc:  # noqa: BLE001 - keep running through a migration or a locked database
            log.warning("tick failed: %s", exc)
        stop.wait(interval)


if __name__ == "__main__":
    main()
