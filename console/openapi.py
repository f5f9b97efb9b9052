"""The API's OpenAPI 3 description, generated from the views' declarations with apispec.

Each API view declares its operation with `operation(...)`; `describe(app)` walks the app's
URL map and builds the document from those declarations, so it cannot drift from the routes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

from apispec import APISpec
from flask import Flask

from callcenter.calls import listing

F = TypeVar("F", bound=Callable[..., Any])
ATTRIBUTE = "openapi_operation"

_NULLABLE_STRING = {"type": "string", "nullable": True}
_TIME = {"type": "string", "format": "date-time"}
_NULLABLE_TIME = {"type": "string", "format": "date-time", "nullable": True}
OUTCOMES = list(listing.OUTCOMES)

SCHEMAS: dict[str, dict[str, Any]] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "string", "description": "what is wrong, in words"}},
    },
    "Me": {
        "type": "object",
        "required": ["username", "role", "staff"],
        "properties": {
            "username": {"type": "string"},
            "role": {"type": "string", "enum": ["staff", "supervisor", "compliance", "admin"]},
            "staff": _NULLABLE_STRING,
        },
    },
    "Absence": {
        "type": "object",
        "required": ["id", "staff", "start", "end", "substitute", "note"],
        "properties": {
            "id": {"type": "integer"},
            "staff": {"type": "string"},
            "start": _TIME,
            "end": _TIME,
            "substitute": {"type": "string"},
            "note": _NULLABLE_STRING,
        },
    },
    "NewAbsence": {
        "type": "object",
        "required": ["start", "end", "substitute"],
        "properties": {
            "staff": {
                "type": "string",
                "description": "the staff KEY who is away (staff users: themselves, the default)",
            },
            "start": {
                "type": "string",
                "description": "ISO 8601; without an offset it is the line's local time",
            },
            "end": {
                "type": "string",
                "description": "ISO 8601; without an offset it is the line's local time",
            },
            "substitute": {"type": "string", "description": "the staff KEY who answers"},
            "note": _NULLABLE_STRING,
        },
    },
    "Call": {
        "type": "object",
        "required": [
            "call_sid",
            "from",
            "to",
            "started_at",
            "outcome",
            "answered_by",
            "as_substitute",
        ],
        "properties": {
            "call_sid": {"type": "string"},
            "from": {"type": "string"},
            "to": {"type": "string"},
            "started_at": _TIME,
            "outcome": {"type": "string", "enum": OUTCOMES},
            "answered_by": _NULLABLE_STRING,
            "as_substitute": {"type": "boolean"},
            "status": _NULLABLE_STRING,
            "ended_at": _NULLABLE_TIME,
            "intended": _NULLABLE_STRING,
            "routing": _NULLABLE_STRING,
            "notice": _NULLABLE_STRING,
            "ring_seconds": {"type": "integer", "nullable": True},
            "talk_seconds": {"type": "integer", "nullable": True},
        },
    },
    "Callback": {
        "type": "object",
        "required": ["id", "phone", "call_sid", "due_at", "status"],
        "properties": {
            "id": {"type": "integer"},
            "phone": {"type": "string"},
            "call_sid": _NULLABLE_STRING,
            "reason": {"type": "string"},
            "requested_at": _TIME,
            "due_at": _TIME,
            "status": {"type": "string", "enum": ["open", "done"]},
            "done_at": _NULLABLE_TIME,
            "note": _NULLABLE_STRING,
        },
    },
    "Done": {
        "type": "object",
        "properties": {"note": _NULLABLE_STRING},
    },
    "LogEntry": {
        "type": "object",
        "required": ["seq", "at", "event", "recording_sid", "actor", "details", "hash"],
        "properties": {
            "seq": {"type": "integer"},
            "at": _TIME,
            "event": {"type": "string"},
            "recording_sid": _NULLABLE_STRING,
            "actor": {"type": "string"},
            "details": {"type": "object"},
            "prev_hash": {"type": "string"},
            "hash": {"type": "string"},
        },
    },
    "Hold": {
        "type": "object",
        "required": ["recording_sid", "call_sid", "status", "due_at", "placed_at", "placed_by"],
        "properties": {
            "recording_sid": {"type": "string"},
            "call_sid": {"type": "string"},
            "status": {"type": "string"},
            "due_at": _TIME,
            "placed_at": _TIME,
            "placed_by": {"type": "string"},
            "reason": {"type": "string"},
        },
    },
    "NewHold": {
        "type": "object",
        "required": ["recording_sid", "reason"],
        "properties": {
            "recording_sid": {"type": "string", "description": "the Twilio RecordingSid"},
            "reason": {"type": "string", "description": "why it must be kept (no names)"},
        },
    },
    "Release": {
        "type": "object",
        "required": ["reason"],
        "properties": {"reason": {"type": "string", "description": "why the hold ends"}},
    },
    "ReleasedHold": {
        "type": "object",
        "required": ["recording_sid", "released_at", "released_by", "due_at"],
        "properties": {
            "recording_sid": {"type": "string"},
            "placed_at": _TIME,
            "placed_by": {"type": "string"},
            "released_at": _TIME,
            "released_by": {"type": "string"},
            "release_reason": {"type": "string"},
            "due_at": _TIME,
        },
    },
    "Due": {
        "type": "object",
        "required": ["recording_sid", "call_sid", "due_at", "status", "on_hold"],
        "properties": {
            "recording_sid": {"type": "string"},
            "call_sid": {"type": "string"},
            "due_at": _TIME,
            "status": {"type": "string"},
            "on_hold": {"type": "boolean"},
        },
    },
    "VerifyRequest": {
        "type": "object",
        "properties": {
            "sample": {
                "type": "integer",
                "minimum": 1,
                "maximum": 1_000_000,
                "nullable": True,
                "description": "check this many recordings in storage at random (default: all)",
            }
        },
    },
    "Verification": {
        "type": "object",
        "required": ["ok", "problems", "head"],
        "properties": {
            "ok": {"type": "boolean"},
            "problems": {"type": "array", "items": {"type": "string"}},
            "head": {"type": "string", "nullable": True, "description": "SEQ:HASH"},
        },
    },
    "AccessRequest": {
        "type": "object",
        "required": ["reason"],
        "properties": {
            "reason": {"type": "string", "description": "why you need the audio (required)"},
            "purpose": {"type": "string", "enum": ["listen", "download"], "default": "listen"},
        },
    },
    "AudioAddress": {
        "type": "object",
        "required": ["url", "expires_at"],
        "properties": {
            "url": {"type": "string", "description": "GET it for the audio (Range answered)"},
            "expires_at": _TIME,
        },
    },
}

_WORDS = {
    400: "the request cannot be read (bad JSON, a bad parameter)",
    401: "not signed in: send Authorization: Bearer TOKEN",
    403: "the role may not do this",
    404: "no such thing, or not yours",
    410: "it is gone (the recording was deleted)",
    422: "refused by the rules the command line applies",
    503: "the storage cannot be reached: nothing was judged",
}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def json_response(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def operation(
    *,
    summary: str,
    responses: dict[int, dict[str, Any]],
    errors: tuple[int, ...] = (401, 403),
    parameters: list[dict[str, Any]] | None = None,
    body: str | None = None,
    body_required: bool = True,
    secured: bool = True,
) -> Callable[[F], F]:
    """Declare a view's OpenAPI operation (its answers, parameters and body)."""

    def decorate(view: F) -> F:
        answers: dict[str, Any] = {str(code): value for code, value in responses.items()}
        for code in errors:
            answers[str(code)] = json_response(_WORDS[code], ref("Error"))
        spec: dict[str, Any] = {
            "summary": summary,
            "operationId": view.__name__,
            "responses": answers,
        }
        if parameters:
            spec["parameters"] = parameters
        if body is not None:
            spec["requestBody"] = {
                "required": body_required,
                "content": {"application/json": {"schema": ref(body)}},
            }
        if not secured:
            spec["security"] = []
        setattr(view, ATTRIBUTE, spec)
        return view

    return decorate


def query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


def path_string(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def path_id(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1},
    }


_CONVERTER = re.compile(r"<(?:[a-z]+:)?([a-zA-Z_][a-zA-Z0-9_]*)>")


def describe(app: Flask, blueprint: str = "api") -> dict[str, Any]:
    """Build the OpenAPI document of a blueprint's routes from their declarations."""
    spec = APISpec(
        title="callcenter console API",
        version="1",
        openapi_version="3.0.3",
        info={
            "description": (
                "Staff, supervisors, compliance and programs: absences, the call log and "
                "callbacks; the retention log, legal holds, what is due and verification; "
                "listening to a recording with a stated reason (a short-lived signed address). "
                "Send `Authorization: Bearer TOKEN` (`callcenter users token USERNAME`); a "
                "signed-in console session works too (writes then need its X-CSRFToken)."
            )
        },
    )
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    for name, schema in SCHEMAS.items():
        spec.components.schema(name, schema)
    paths: dict[str, dict[str, Any]] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if not rule.endpoint.startswith(blueprint + "."):
            continue
        declared = getattr(app.view_functions[rule.endpoint], ATTRIBUTE, None)
        if declared is None:
            continue
        path = _CONVERTER.sub(r"{\1}", rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            paths.setdefault(path, {})[method.lower()] = declared
    for path, operations in paths.items():
        spec.path(path=path, operations=operations)
    document = spec.to_dict()
    document["security"] = [{"bearer": []}]
    return document
