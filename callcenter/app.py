"""The Flask app factory: the web process's composition root."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify
from sqlalchemy import text
from werkzeug.exceptions import HTTPException

from callcenter import settings as settings_module
from callcenter.runtime import Runtime
from callcenter.settings import Settings

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> Flask:
    """Build the web app. Settings come from the environment unless given."""
    if runtime is None:
        runtime = Runtime(settings_module.for_web(settings or settings_module.load()))
    app = Flask(__name__)
    app.config["SECRET_KEY"] = runtime.settings.secret_key
    app.config["MAX_CONTENT_LENGTH"] = 1024 * 1024
    app.extensions["callcenter.runtime"] = runtime

    from webhooks.recordings import bp as recordings_bp
    from webhooks.status import bp as status_bp
    from webhooks.voice import bp as voice_bp

    app.register_blueprint(voice_bp)
    app.register_blueprint(recordings_bp)
    app.register_blueprint(status_bp)

    @app.get("/healthz")
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
