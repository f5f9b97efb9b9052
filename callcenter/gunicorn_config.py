"""gunicorn's settings for the web process: `gunicorn -c python:callcenter.gunicorn_config`.

The Procfile's `web` and `callcenter web` both run gunicorn with this file, so they are the same
process reading the same settings: `PORT` (bind 0.0.0.0:PORT, else 8000), `WEB_CONCURRENCY`
(worker processes, default 2), `WEB_THREADS` (threads per worker, default 16), `LOG_FORMAT`.

Why threads (gthread): a sync worker is held for the whole of a request, so two clients that
send headers and half a body hold both workers while every call waits (issue 15). gthread's
main loop reads a request only once its socket is readable and hands a thread only a request
whose headers have arrived; a thread that waits on a slow body holds one thread of eight.
The threads' writes are committed together (`db.GroupCommit`), one batch at a time, on one
kept connection per process (`db.PinnedConnections`), so WEB_THREADS costs no database
connections. Past `timeout`, a silent connection is closed (`keepalive` bounds idle ones).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from gunicorn import util

from callcenter import logs, metrics


def _int(name: str, default: int) -> int:
    raw = (os.environ.get(name) or "").strip()
    return int(raw) if raw.isdigit() and int(raw) > 0 else default


bind = [f"0.0.0.0:{_int('PORT', 8000)}"]
workers = _int("WEB_CONCURRENCY", 2)
worker_class = "gthread"
# 16, not 8: more threads put more writes in each group commit, and on PostgreSQL each commit
# waits for its WAL flush (benchmarks/README.md: status events 0.18-0.24 of the bare app with
# 16 threads against 0.13-0.15 with 8, voice 0.31-0.33 against 0.24-0.29; SQLite alike).
threads = _int("WEB_THREADS", 16)
# The app is built once in the master: a bad setting or an old schema stops the server with
# one line, before any worker starts.
preload_app = True
# Twilio waits 15 s at most; a request this slow is already lost.
timeout = 30
graceful_timeout = 20
keepalive = 5
# The longest request line gunicorn reads (its maximum): Twilio's URLs are short, and a
# longer one gets a plain 414 (below) instead of being read into memory.
limit_request_line = 8190
accesslog = "-"
# No query strings are ours, and the path is enough: keep numbers out of logs.
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(M)sms'
logconfig_dict = logs.gunicorn_logconfig((os.environ.get("LOG_FORMAT") or "text").strip().lower())


def _plain_error(sock: object, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn's own refusals (a request line too long, a malformed request) in plain text.

    gunicorn writes them as an HTML page; Twilio and an operator's curl read plain text.
    """
    body = f"{status_int} {reason}\n".encode("latin-1", "replace")
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    util.write_nonblock(sock, head.encode("latin-1", "replace") + body)


util.write_error = _plain_error


def on_starting(server: object) -> None:
    # PROMETHEUS_MULTIPROC_DIR: an earlier server's samples are not this one's.
    metrics.reset_multiprocess_dir()
    if workers > 1 and metrics.multiprocess_dir() is None and os.environ.get("METRICS_TOKEN"):
        logging.getLogger(__name__).warning(
            "METRICS_TOKEN is set but PROMETHEUS_MULTIPROC_DIR is not: "
            "each scrape of /metrics sees one of the %d workers",
            workers,
        )


def child_exit(server: object, worker: Any) -> None:
    metrics.worker_exited(worker.pid)
