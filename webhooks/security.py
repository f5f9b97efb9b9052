"""Twilio request signing: every webhook is checked against PUBLIC_BASE_URL + path.

`request.url` is not used: behind a TLS-terminating proxy it says http:// where Twilio signed
https://. There is deliberately no switch that turns validation off.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from flask import abort
from twilio.request_validator import RequestValidator, compare
from werkzeug.datastructures import MultiDict

from callcenter import logs
from callcenter.runtime import Runtime
from callcenter.settings import Settings
from callcenter.twilio_values import malformed_sids
from webhooks.forms import MAX_BODY_BYTES, Incoming, TwilioForm

log = logging.getLogger(__name__)


class MissingField(Exception):
    """A signed webhook lacks a field it must carry; answered with 400."""

    def __init__(self, names: list[str]) -> None:
        super().__init__("missing form field(s): " + ", ".join(names))
        self.names = names


@functools.lru_cache(maxsize=4)
def _validator(token: str) -> RequestValidator:
    return RequestValidator(token)


def _tokens(current: Settings) -> list[str]:
    """The tokens a signature may be made with: the current one, and during a rotation the other."""
    tokens = [current.require("TWILIO_AUTH_TOKEN")]
    if current.twilio_auth_token_secondary:
        tokens.append(current.twilio_auth_token_secondary)
    return tokens


def _signed_with(validator: RequestValidator, url: str, form: TwilioForm, signature: str) -> bool:
    # Twilio signs the URL exactly as configured; try that first, then let the library try
    # its port variants (https with and without :443) before refusing.
    if compare(validator.compute_signature(url, form), signature):
        return True
    return bool(validator.validate(url, form, signature))


def signature_problem(current: Settings, incoming: Incoming) -> str | None:
    """Return None for a request signed by our account for this URL, else what is wrong.

    Rules: the signature is checked against PUBLIC_BASE_URL + path, with TWILIO_AUTH_TOKEN and
    then TWILIO_AUTH_TOKEN_SECONDARY (a token rotation); a signature that is right for the
    address the request arrived at, but not for that one, is a URL mismatch (a proxy, or a
    PUBLIC_BASE_URL other than the number's webhook address). What the signature should have
    been is never said.
    """
    signature = incoming.signature
    if not signature:
        return "missing signature"
    url = current.url_for(incoming.path)
    form = incoming.form
    validators = [_validator(token) for token in _tokens(current)]
    if any(_signed_with(validator, url, form, signature) for validator in validators):
        return None
    arrived = incoming.url
    if arrived != url and any(
        _signed_with(validator, arrived, form, signature) for validator in validators
    ):
        return f"URL mismatch: signed for {logs.escape(arrived)}, not PUBLIC_BASE_URL + path"
    return "wrong signature"


def foreign_account(current: Settings, form: MultiDict[str, str]) -> bool:
    """Whether a signed request names an AccountSid other than ours (a subaccount's, say)."""
    account = (form.get("AccountSid") or "").strip()
    expected = current.twilio_account_sid
    return bool(account and expected and account != expected)


def refuse_unless_ours(current: Settings, incoming: Incoming) -> None:
    """Raise 403 for any request not signed by our Twilio account for this exact URL.

    Rules: a signed request whose SID fields are not of Twilio's form (two letters, 32 hex
    digits) is refused with 400 on every webhook; one signed with our token but naming another
    AccountSid is refused the same way on every webhook (403): it is not ours to store or to
    answer.
    """
    path = logs.escape(incoming.path)
    if incoming.content_length > MAX_BODY_BYTES:
        # Refused before anything is read, signed or not (a chunked one: when it is read).
        abort(413)
    problem = signature_problem(current, incoming)
    if problem is not None:
        log.warning("refused a request to %s: %s", path, problem)
        abort(403)
    malformed = malformed_sids(incoming.form)
    if malformed:
        log.warning("refused a request to %s: malformed %s", path, ", ".join(malformed))
        abort(400, description="not a Twilio SID: " + ", ".join(malformed))
    if foreign_account(current, incoming.form):
        log.warning("refused a signed request to %s about another account", path)
        abort(403)


Handler = Callable[[Runtime, Incoming], Any]


def twilio_webhook(handler: Handler) -> Handler:
    """A webhook handler that runs only for requests `refuse_unless_ours` lets through."""

    @functools.wraps(handler)
    def wrapper(runtime: Runtime, incoming: Incoming) -> Any:
        refuse_unless_ours(runtime.settings, incoming)
        return handler(runtime, incoming)

    return wrapper


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
