"""What people use: the console's pages and the JSON API, sign-in and roles.

`init_app` wires it into the web app (the composition root calls it): sign-in, languages,
security headers, CSRF, the access hook, the blueprints and the error pages.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify, render_template, request
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from callcenter.settings import Settings
from console import access, auth, i18n, security
from console.api import ApiError
from console.api import bp as api_bp
from console.compliance import bp as compliance_bp
from console.pages import bp as pages_bp
from console.security import csrf

log = logging.getLogger(__name__)

__all__ = ["error_response", "handles", "init_app"]


def init_app(app: Flask, settings: Settings) -> None:
    security.init_app(app, settings)
    i18n.init_app(app)
    auth.init_app(app)
    csrf.init_app(app)
    app.before_request(access.enforce)
    app.before_request(security.refuse_nul)
    app.context_processor(lambda: {"lang": i18n.current()})
    app.register_blueprint(pages_bp)
    app.register_blueprint(compliance_bp)
    app.register_blueprint(api_bp)
    # Blueprint static files have no view function of ours to decorate.
    access.declare(app, "console.static", access.PUBLIC)


def handles(path: str) -> bool:
    return access.is_api(path) or path == "/console" or path.startswith("/console/")


def error_response(exc: HTTPException) -> Response:
    """An error as the console shows it: JSON for the API, a plain page for the pages."""
    code = exc.code or 500
    if access.is_api(request.path):
        if isinstance(exc, CSRFError):
            message = "a signed-in session must send its X-CSRFToken with writes"
        elif code >= 500 and not isinstance(exc, ApiError):
            # Our own 5xx answers (storage unavailable: 503) say what is wrong; others do not.
            message = "something went wrong on our side; it has been logged"
        else:
            message = exc.description or exc.name
        response = jsonify({"error": message})
        response.status_code = code
        return response
    if isinstance(exc, CSRFError):
        message = _("Veidlapa ir novecojusi. Atjaunojiet lapu un mēģiniet vēlreiz.")
    elif code == 404:
        message = _("Šādas lapas nav.")
    elif code == 403:
        message = _("Jūsu lomai šī lapa nav pieejama.")
    elif code >= 500:
        message = _("Radās kļūda. Tā ir pierakstīta; mēģiniet vēlreiz vēlāk.")
    else:
        message = exc.description or exc.name
    try:
        body = render_template("error.html", code=code, message=message)
    except Exception:
        log.exception("the error page could not be rendered")
        body = f"{code}: {exc.name}"
        return Response(body, status=code, mimetype="text/plain")
    return Response(body, status=code)
