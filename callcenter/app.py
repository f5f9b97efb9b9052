"""The Flask app factory: the web process's composition root."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Request, Response, jsonify, request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from werkzeug.exceptions import HTTPException

import console
from callcenter import health, metrics
from callcenter import settings as settings_module
from callcenter.db import deadline
from callcenter.runtime import EXTENSION, WEB_BOUNDS, Runtime
from callcenter.settings import Settings
from console import access
from webhooks import paths
from webhooks.forms import MAX_BODY_BYTES, WebhookRequest
from webhooks.front import TwilioFront, plain_error
from webhooks.recordings import bp as recordings_bp
from webhooks.status import bp as status_bp
from webhooks.voice import bp as voice_bp

log = logging.getLogger(__name__)

# /healthz answers within this, whatever the database does.
HEALTH_SECONDS = 2.0


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

    # No app-wide static folder: the console serves its own stylesheet.
    app = Flask(__name__, static_folder=None)
    app.request_class = WebhookRequest
    app.config["SECRET_KEY"] = runtime.settings.secret_key
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.extensions[EXTENSION] = runtime
    app.session_interface = _NoSessionsForTwilio()

    app.register_blueprint(voice_bp)
    app.register_blueprint(recordings_bp)
    app.register_blueprint(status_bp)
    # Every webhook checks Twilio's signature itself (webhooks.security.twilio_webhook), both
    # ahead of Flask (webhooks.front) and as a Flask route.
    for endpoint in list(app.view_functions):
        if endpoint.split(".")[0] in (voice_bp.name, recordings_bp.name, status_bp.name):
            access.declare(app, endpoint, access.TWILIO_SIGNED)
    console.init_app(app, runtime.settings)

    @app.get(paths.HEALTH)
    @access.public
    def healthz() -> Any:
        # A health check that hangs is no answer: every wait ends within two seconds.
        with deadline(HEALTH_SECONDS):
            healthy, body = health.report(runtime, runtime.now())
        return jsonify(body), 200 if healthy else 503

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        if request.path.startswith("/twilio/"):
            # Twilio (and whoever probes its webhooks) gets a plain line, not an HTML page.
            return plain_error(exc).response()
        if console.handles(request.path):
            return console.error_response(exc)
        response = jsonify({"error": exc.name, "detail": exc.description})
        response.status_code = exc.code or 500
        return response

    # Twilio's webhooks are answered ahead of Flask by the same handlers (webhooks.front).
    app.wsgi_app = TwilioFront(app.wsgi_app, runtime, metrics.install(app, runtime))  # type: ignore[method-assign]
    return app
