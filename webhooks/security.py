"""Twilio request signing: every webhook is checked against PUBLIC_BASE_URL + path.

`request.url` is not used: behind a TLS-terminating proxy it says http:// where Twilio signed
https://. There is deliberately no switch that turns validation off.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from flask import abort, current_app, request
from twilio.request_validator import RequestValidator, compare
from werkzeug.datastructures import MultiDict

from callcenter import logs
from callcenter.runtime import Runtime
from callcenter.settings import Settings
from callcenter.twilio_values import malformed_sids
from webhooks.forms import MAX_BODY_BYTES

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])


class MissingField(Exception):
    """A signed webhook lacks a field it must carry; answered with 400."""

    def __init__(self, names: list[str]) -> None:
        super().__init__("missing form field(s): " + ", ".join(names))
        self.names = names


def current_runtime() -> Runtime:
    """The runtime of the app serving this request: the one accessor every webhook uses."""
    return Runtime.of(current_app)


def settings() -> Settings:
    return current_runtime().settings


@functools.lru_cache(maxsize=4)
def _validator(token: str) -> RequestValidator:
    return RequestValidator(token)


def _tokens(current: Settings) -> list[str]:
    """The tokens a signature may be made with: the current one, and during a rotation the other."""
    tokens = [current.require("TWILIO_AUTH_TOKEN")]
    if current.twilio_auth_token_secondary:
        tokens.append(current.twilio_auth_token_secondary)
    return tokens


def _signed_with(validator: RequestValidator, url: str, signature: str) -> bool:
    # Twilio signs the URL exactly as configured; try that first, then let the library try
    # its port variants (https with and without :443) before refusing.
    if compare(validator.compute_signature(url, request.form), signature):
        return True
    return bool(validator.validate(url, request.form, signature))


def signature_problem() -> str | None:
    """Return None for a request signed by our account for this URL, else what is wrong.

    Rules: the signature is checked against PUBLIC_BASE_URL + path, with TWILIO_AUTH_TOKEN and
    then TWILIO_AUTH_TOKEN_SECONDARY (a token rotation); a signature that is right for the
    address the request arrived at, but not for that one, is a URL mismatch (a proxy, or a
    PUBLIC_BASE_URL other than the number's webhook address). What the signature should have
    been is never said.
    """
    signature = request.headers.get("X-Twilio-Signature", "")
    if not signature:
        return "missing signature"
    current = settings()
    url = current.url_for(request.path)
    validators = [_validator(token) for token in _tokens(current)]
    if any(_signed_with(validator, url, signature) for validator in validators):
        return None
    if request.url != url and any(
        _signed_with(validator, request.url, signature) for validator in validators
    ):
        return f"URL mismatch: signed for {logs.escape(request.url)}, not PUBLIC_BASE_URL + path"
    return "wrong signature"


def signature_is_valid() -> bool:
    return signature_problem() is None


def foreign_account() -> bool:
    """Whether a signed request names an AccountSid other than ours (a subaccount's, say)."""
    account = (request.form.get("AccountSid") or "").strip()
    expected = settings().twilio_account_sid
    return bool(account and expected and account != expected)


def twilio_webhook(view: F) -> F:
    """Refuse (403) any request not signed by our Twilio account for this exact URL.

    Rules: a signed request whose SID fields are not of Twilio's form (two letters, 32 hex
    digits) is refused with 400 on every webhook; one signed with our token but naming another
    AccountSid is refused the same way on every webhook (403): it is not ours to store or to
    answer.
    """

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if (request.content_length or 0) > MAX_BODY_BYTES:
            # Refused before anything is read, signed or not (a chunked one: when it is read).
            abort(413)
        problem = signature_problem()
        if problem is not None:
            log.warning("refused a request to %s: %s", logs.escape(request.path), problem)
            abort(403)
        malformed = malformed_sids(request.form)
        if malformed:
            log.warning(
                "refused a request to %s: malformed %s",
                logs.escape(request.path),
                ", ".join(malformed),
            )
            abort(400, description="not a Twilio SID: " + ", ".join(malformed))
        if foreign_account():
            log.warning(
                "refused a signed request to %s about another account", logs.escape(request.path)
            )
            abort(403)
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


# Twilio's SIDs, statuses and numbers are far shorter; a longer value is not Twilio's, and
# refusing it here keeps it out of the rows and the log lines of every webhook alike.
MAX_FIELD_CHARS = 256


class UnusableField(MissingField):
    """A signed webhook's required field holds what cannot be a Twilio value; answered 400."""

    def __init__(self, names: list[str]) -> None:
        Exception.__init__(self, "form field(s) not a Twilio value: " + ", ".join(names))
        self.names = names


def require(form: MultiDict[str, str], *names: str) -> dict[str, str]:
    """Return the named fields, or raise MissingField naming every absent one.

    Rules: a field longer than MAX_FIELD_CHARS raises UnusableField (also a 400).
    """
    missing = [name for name in names if not form.get(name, "").strip()]
    if missing:
        raise MissingField(missing)
    found = {name: form[name].strip() for name in names}
    unusable = [name for name, value in found.items() if len(value) > MAX_FIELD_CHARS]
    if unusable:
        raise UnusableField(unusable)
    return found
