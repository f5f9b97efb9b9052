"""Security headers and cookie settings of the console and the API.

Cookies: the session cookie is HttpOnly, SameSite=Lax, and Secure unless the service runs
over plain http on loopback (`callcenter serve`) or CONSOLE_SECURE_COOKIES=false says so.
"""

from __future__ import annotations

from datetime import timedelta

from flask import Flask, Response, abort, request
from flask_wtf.csrf import CSRFProtect

from callcenter.settings import Settings

csrf = CSRFProtect()

# No inline scripts or styles anywhere: the stylesheet is a file, and there is no script.
# Audio plays from our own signed addresses (media-src), never from elsewhere.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self'; media-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}
# A signed-in session lasts a working day and a bit; then one signs in again.
SESSION_LIFETIME = timedelta(hours=12)


def add_headers(response: Response) -> Response:
    if request.path.startswith("/twilio/"):
        return response  # TwiML for Twilio: no browser reads it
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    if request.path.startswith(("/console/", "/api/")) and "Cache-Control" not in response.headers:
        response.headers["Cache-Control"] = "no-store"
    return response


def init_app(app: Flask, settings: Settings) -> None:
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.secure_cookies,
        SESSION_COOKIE_NAME="callcenter_session",
        PERMANENT_SESSION_LIFETIME=SESSION_LIFETIME,
        # CSRF is checked by the console's own hook (every unsafe request to a page, and to
        # the API when signed in by cookie), not app-wide: Twilio's webhooks carry no token.
        WTF_CSRF_CHECK_DEFAULT=False,
        WTF_CSRF_TIME_LIMIT=None,
        WTF_CSRF_SSL_STRICT=settings.secure_cookies,
    )
    app.after_request(add_headers)


def refuse_nul() -> None:
    """Refuse a console or API request whose query or form holds a NUL character (400).

    No text the console stores or looks up can hold one (PostgreSQL refuses it in any text),
    so it is a bad request here rather than a database error later.
    """
    if not request.path.startswith(("/console", "/api/")):
        return
    values = list(request.args.values())
    if request.method == "POST" and request.mimetype in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        values += list(request.form.values())
    if any("\x00" in value for value in values):
        abort(400, "a parameter holds a NUL character")
