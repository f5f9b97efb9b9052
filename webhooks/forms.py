"""The request class of the web app: Twilio's small url-encoded forms, parsed directly.

Werkzeug's form parser wraps the input in streams built for uploads of any size; for the few
hundred bytes Twilio posts, the wrapping costs more than the parsing itself (it showed up in
profiles of `/twilio/voice`, the path every call takes). Bodies of any other type or size, or
without a length, take werkzeug's own path with its limits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from flask import Request
from werkzeug.datastructures import ImmutableMultiDict
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wsgi import get_current_url

# Twilio's webhooks are well under this; anything bigger goes through werkzeug's limits.
SMALL_FORM_BYTES = 64 * 1024
# The largest body the web app reads (MAX_CONTENT_LENGTH); a larger one is answered 413. A
# Twilio form is a few hundred bytes, the largest a few kilobytes.
MAX_BODY_BYTES = 64 * 1024
_URLENCODED = "application/x-www-form-urlencoded"


class TwilioForm(ImmutableMultiDict[str, str]):
    """A parsed form that twilio's RequestValidator reads without a failed lookup per field."""

    def getall(self, key: str) -> list[str]:
        # RequestValidator.get_values tries `getall` first, then `getlist` on AttributeError.
        return self.getlist(key)


class WebhookRequest(Request):
    """Flask's request, with small url-encoded bodies parsed straight from the input."""

    parameter_storage_class = TwilioForm

    def _load_form_data(self) -> None:
        if "form" in self.__dict__:
            return
        environ = self.environ
        length = environ.get("CONTENT_LENGTH") or ""
        content_type = environ.get("CONTENT_TYPE") or ""
        if not length and environ.get("wsgi.input_terminated") and not self.shallow:
            # A chunked body: read it whole, up to the limit, and refuse one past it (413)
            # rather than cut it short and answer what the signature no longer covers.
            body = environ["wsgi.input"].read(MAX_BODY_BYTES + 1)
            if len(body) > MAX_BODY_BYTES:
                raise RequestEntityTooLarge()
            self._parse_small(body, content_type)
            return
        if (
            not length.isdigit()
            or int(length) > SMALL_FORM_BYTES
            or content_type.partition(";")[0].strip().lower() != _URLENCODED
            or self.shallow
        ):
            super()._load_form_data()
            return
        self._parse_small(environ["wsgi.input"].read(int(length)), content_type)

    def _parse_small(self, body: bytes, content_type: str) -> None:
        self.__dict__.update(form=parse_form(body, content_type), files=TwilioForm())


def parse_form(body: bytes, content_type: str) -> TwilioForm:
    """Parse a small body as werkzeug would: a url-encoded form, else no fields."""
    if content_type.partition(";")[0].strip().lower() != _URLENCODED:
        # Not a form: no fields (the views then answer 400 naming the ones they miss).
        return TwilioForm()
    try:
        # As werkzeug does: undecodable percent-escapes are kept, not dropped...
        return TwilioForm(
            parse_qsl(body.decode(), keep_blank_values=True, errors="werkzeug.url_quote")
        )
    except UnicodeDecodeError:
        # ...and a body that is not UTF-8 at all parses as an empty form (werkzeug's silent
        # mode); the views then answer 400 naming the fields they miss.
        return TwilioForm()


@dataclass(frozen=True, slots=True)
class Incoming:
    """A webhook request as the webhooks read it, from Flask's request or straight from WSGI.

    `webhooks.front` builds it from the WSGI environ for the small url-encoded bodies Twilio
    posts; every other request reaches the same handler through Flask (`of_request`).
    """

    path: str
    form: TwilioForm
    environ: dict[str, Any]

    @classmethod
    def of_request(cls, request: Request) -> Incoming:
        form = request.form
        if not isinstance(form, TwilioForm):
            form = TwilioForm(form.items(multi=True))
        return cls(request.path, form, request.environ)

    @classmethod
    def of_environ(cls, environ: dict[str, Any]) -> Incoming | None:
        """Read a small url-encoded body with a length; None for anything else (Flask reads it)."""
        length = environ.get("CONTENT_LENGTH") or ""
        content_type = environ.get("CONTENT_TYPE") or ""
        if (
            not length.isdigit()
            or int(length) > SMALL_FORM_BYTES
            or content_type.partition(";")[0].strip().lower() != _URLENCODED
        ):
            return None
        body = environ["wsgi.input"].read(int(length))
        return cls(environ.get("PATH_INFO") or "/", parse_form(body, content_type), environ)

    @property
    def signature(self) -> str:
        return str(self.environ.get("HTTP_X_TWILIO_SIGNATURE") or "")

    @property
    def content_length(self) -> int:
        length = self.environ.get("CONTENT_LENGTH") or ""
        return int(length) if length.isdigit() else 0

    @property
    def url(self) -> str:
        """The address the request arrived at, as werkzeug reads it (for a URL-mismatch note)."""
        return str(get_current_url(self.environ))
