"""gunicorn settings for the web process; $PORT comes from the systemd instance (web@<port>)."""

import os

bind = f"127.0.0.1:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "uvicorn_worker.UvicornWorker"
# On SIGTERM (the old instance is stopped after the proxy switched and the
# drain period passed) workers finish their in-flight requests first.
graceful_timeout = 20
timeout = 30
keepalive = 5
accesslog = "-"
errorlog = "-"
# Fail at boot, not at the first request, when the app cannot be imported.
preload_app = True
