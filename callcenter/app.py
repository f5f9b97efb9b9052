"""The Flask app factory: the web process's composition root."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Request, Response, jsonify
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from sqlalchemy import text
from werkzeug.exceptions import HTTPException

from callcenter import settings as settings_module
from callcenter.runtime import EXTENSION, WEB_BOUNDS, Runtime
from callcenter.settings import Settings
from webhooks import paths
from webhooks.forms import WebhookRequest
from webhooks.recordings import bp as recordings_bp
from webhooks.status import bp as status_bp
from webhooks.voice import bp as voice_bp

log = logging.getLogger(__name__)


class _NoSessionsForTwilio(SecureCookieSessionInterface):
    """Twilio's webhooks carry no cookies: skip decoding a session for them.

    Flask opens the session on every request; for the webhooks that is pure cost on the path
    every call takes (it showed up in profiles of /twilio/voice).
    """

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if request.path.startswith("/twilio/"):
            return None  # Flask then uses a null session
        return super().open_session(app, request)


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> Flask:
    """Build the web app. Settings come from the environment unless given."""
    if runtime is None:
        runtime = Runtime(
            settings_module.for_web(settings or settings_module.load()), bounds=WEB_BOUNDS
        )

    app = Flask(__name__)
    app.request_class = WebhookRequest
    app.config["SECRET_KEY"] = runtime.settings.secret_key
    app.config["MAX_CONTENT_LENGTH"] = 1024 * 1024
    app.extensions[EXTENSION] = runtime
    app.session_interface = _NoSessionsForTwilio()

    app.register_blueprint(voice_bp)
    app.register_blueprint(recordings_bp)
    app.register_blueprint(status_bp)

    @app.get(paths.HEALTH)
    def healthz() -> Any:
        checks: dict[str, str] = {}
        try:
            with runtime.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as exc:
            log.warning("health check: database: %s", exc)
            checks["database"] = f"error: {type(exc).__name__}"
        try:
            runtime.storage.check()
            checks["storage"] = "ok"
        except Exception as exc:
            log.warning("health check: storage: %s", exc)
            checks["storage"] = f"error: {type(exc).__name__}"
        ok = all(value == "ok" for value in checks.values())
        return jsonify(checks), 200 if ok else 503

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        response = jsonify({"error": exc.name, "detail": exc.description})
        response.status_code = exc.code or 500
        return response

    return app
