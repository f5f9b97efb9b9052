"""Who may use each route: every view declares it; a route without a declaration is refused.

A declaration is an `Access` on the view function (the `allow`, `public` and `twilio_signed`
decorators), or, for views that are not ours to decorate (the blueprints' static files),
one given by endpoint with `declare`. `enforce` runs before every request: an undeclared
endpoint gets 403, an anonymous visitor of a page is sent to sign in (the API answers 401),
and a role the declaration does not name gets 403. A recording's audio is reached by a signed,
short-lived address (`signed_address`): whoever holds it may use it until it expires, and the
view itself refuses an expired, altered or misused one (403).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from flask import Flask, current_app, jsonify, redirect, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from werkzeug.exceptions import Forbidden

from callcenter.accounts.models import ROLES

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])
ATTRIBUTE = "access"


@dataclass(frozen=True)
class Access:
    kind: Literal["public", "twilio-signed", "signed-address", "bearer-token", "roles"]
    roles: frozenset[str] = frozenset()

    def admits(self, role: str) -> bool:
        return self.kind != "roles" or role in self.roles


PUBLIC = Access("public")
TWILIO_SIGNED = Access("twilio-signed")
SIGNED_ADDRESS = Access("signed-address")
# A route that checks a bearer token of its own setting (/metrics: METRICS_TOKEN).
BEARER_TOKEN = Access("bearer-token")
SIGNED_IN = frozenset(ROLES)


def _mark(view: F, access: Access) -> F:
    setattr(view, ATTRIBUTE, access)
    return view


def allow(*roles: str) -> Callable[[F], F]:
    """Let signed-in users with one of these roles use the view."""
    unknown = set(roles) - set(ROLES)
    if unknown or not roles:
        raise ValueError(f"unknown roles {sorted(unknown)}")

    def decorate(view: F) -> F:
        return _mark(view, Access("roles", frozenset(roles)))

    return decorate


def public(view: F) -> F:
    """Let anyone use the view (sign-in page, the OpenAPI description, health check)."""
    return _mark(view, PUBLIC)


def twilio_signed(view: F) -> F:
    """Declare a webhook: anyone may call it, and the view refuses unsigned requests (403)."""
    return _mark(view, TWILIO_SIGNED)


def signed_address(view: F) -> F:
    """Declare a view reached by a signed address: the view refuses a bad or stale one (403)."""
    return _mark(view, SIGNED_ADDRESS)


def bearer_token(view: F) -> F:
    """Declare a route that checks its own bearer token: without it, the view answers 401."""
    return _mark(view, BEARER_TOKEN)


def declare(app: Flask, endpoint: str, access: Access) -> None:
    """Declare the access of an endpoint whose view function is not ours to decorate."""
    app.extensions.setdefault("callcenter.access", {})[endpoint] = access


def rule_for(app: Flask, endpoint: str) -> Access | None:
    view = app.view_functions.get(endpoint)
    found = getattr(view, ATTRIBUTE, None)
    if isinstance(found, Access):
        return found
    declared: dict[str, Access] = app.extensions.get("callcenter.access", {})
    return declared.get(endpoint)


def is_api(path: str) -> bool:
    return path == "/api" or path.startswith("/api/")


def unauthenticated() -> ResponseReturnValue:
    if is_api(request.path):
        response = jsonify({"error": "sign in, or send Authorization: Bearer TOKEN"})
        response.status_code = 401
        response.headers["WWW-Authenticate"] = "Bearer"
        return response
    return redirect(url_for("console.login", next=request.full_path.rstrip("?")))


def enforce() -> ResponseReturnValue | None:
    """Refuse what the route's declaration does not allow (deny by default)."""
    endpoint = request.endpoint
    if endpoint is None:
        return None  # no route: the 404 or 405 follows
    access = rule_for(current_app, endpoint)
    if access is None:
        log.error("refused %s: the route declares no access rule", endpoint)
        raise Forbidden("this address has no access rule")
    if access.kind != "roles":
        return None
    if not current_user.is_authenticated:
        return unauthenticated()
    if not access.admits(current_user.role):
        log.info("refused user %s (%s) at %s", current_user.id, current_user.role, endpoint)
        raise Forbidden("your role may not use this")
    return None
