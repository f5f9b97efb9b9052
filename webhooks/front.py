"""Twilio's webhooks answered straight from WSGI, ahead of Flask, by the same handlers.

Every call makes four or more webhook requests, and each handler's own work (the signature,
one group-committed write, the answer) costs less than Flask's per-request machinery around it
(request and app contexts, URL binding, before/after hooks, the Response object): the
benchmarks measured it at about a third of the voice route's time in-process. So a POST to a
webhook path with the small url-encoded body Twilio sends is read here and handed to its
handler; anything else (another method, a chunked or large body, another content type) goes
on to Flask, where the same path is a route calling the same handler. Both ways keep the same
rules: the route is `access.TWILIO_SIGNED` and the handler checks the signature first
(`security.twilio_webhook`); refusals read as `plain_error` writes them; every answer is timed
for /metrics.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Response, current_app, request
from werkzeug.exceptions import HTTPException, InternalServerError
from werkzeug.http import HTTP_STATUS_CODES

from callcenter import logs
from callcenter.runtime import Runtime
from webhooks.forms import Incoming
from webhooks.security import Handler

log = logging.getLogger(__name__)

# Path -> handler of every webhook, filled as the modules register their routes.
HANDLERS: dict[str, Handler] = {}


@dataclass(frozen=True, slots=True)
class Reply:
    """A webhook's answer: status, body and its media type (None for an empty 204)."""

    status: int
    body: bytes = b""
    mimetype: str | None = None

    @classmethod
    def plain(cls, status: int, text: str) -> Reply:
        """A one-line answer in plain text (a refusal, a failure Twilio may retry)."""
        return cls(status, text.encode(), "text/plain")

    def response(self) -> Response:
        if self.mimetype is None:
            return Response(status=self.status)
        return Response(self.body, status=self.status, mimetype=self.mimetype)


def plain_error(exc: HTTPException) -> Reply:
    """A refusal as Twilio (and whoever probes its webhooks) reads it: one plain line."""
    detail = exc.description if exc.description != type(exc).description else None
    text = f"{exc.code} {exc.name}" + (f": {detail}" if detail else "")
    return Reply.plain(exc.code or 500, text + "\n")


def route(bp: Blueprint, path: str) -> Callable[[Handler], Handler]:
    """Register `handler` for POSTs to `path`: in the front, and as a Flask route beside it."""

    def register(handler: Handler) -> Handler:
        HANDLERS[path] = handler

        def view() -> Response:
            answer = handler(Runtime.of(current_app), Incoming.of_request(request))
            return answer.response() if isinstance(answer, Reply) else answer

        view.__name__ = view.__qualname__ = handler.__name__
        view.__doc__ = handler.__doc__
        bp.add_url_rule(path, handler.__name__, view, methods=["POST"])
        return handler

    return register


StartResponse = Callable[..., Any]
Observe = Callable[[str, int, float], None]


def _headers(reply: Reply) -> list[tuple[str, str]]:
    # As werkzeug writes them for the same Response (a 204 carries no body and no length).
    if reply.mimetype is None:
        return [("Content-Type", "text/html; charset=utf-8")]
    return [
        ("Content-Type", f"{reply.mimetype}; charset=utf-8"),
        ("Content-Length", str(len(reply.body))),
    ]


class TwilioFront:
    """WSGI middleware: webhook POSTs to their handlers, everything else to `app`."""

    def __init__(
        self, app: Callable[[dict[str, Any], StartResponse], Iterable[bytes]], runtime: Runtime,
        observe: Observe,
    ) -> None:  # fmt: skip
        self.app = app
        self.runtime = runtime
        self.observe = observe

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or ""
        handler = HANDLERS.get(path)
        if handler is None or environ.get("REQUEST_METHOD") != "POST":
            return self.app(environ, start_response)
        began = time.perf_counter()
        incoming = Incoming.of_environ(environ)
        if incoming is None:
            return self.app(environ, start_response)
        try:
            reply = handler(self.runtime, incoming)
        except HTTPException as exc:
            reply = plain_error(exc)
        except Exception:
            # The handlers answer their own failures (TwiML, or 503); this is the last resort.
            log.exception("webhook %s failed", logs.escape(path))
            reply = plain_error(InternalServerError())
        start_response(f"{reply.status} {HTTP_STATUS_CODES[reply.status].upper()}", _headers(reply))
        self.observe(path, reply.status, time.perf_counter() - began)
        return [reply.body] if reply.body else []
