"""The JSON API of the contract's table: the same domain functions and rules as the pages.

Errors are `{"error": "..."}` in plain words: 400 for what cannot be read (not JSON, a bad
parameter), 401 without a sign-in, 403 for a role that may not, 404 for what does not exist
or is not the caller's, 422 for what the command line would refuse. Each write is one
transaction: a refusal writes nothing.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from flask.typing import ResponseReturnValue
from sqlalchemy.orm import Session
from werkzeug.exceptions import HTTPException

from callcenter.calls import callbacks as callbacks_module
from callcenter.calls import listing
from callcenter.calls.models import CallbackRequest
from callcenter.db import transaction
from callcenter.directory import service as directory
from callcenter.directory.models import Absence
from callcenter.localtime import LocalTimeError, local_iso, parse_local
from console import openapi
from console.access import SIGNED_IN, allow, public
from console.auth import Viewer, runtime, via_token, viewer
from console.openapi import json_response, operation, path_id, query, ref
from console.security import csrf

log = logging.getLogger(__name__)

bp = Blueprint("api", __name__, url_prefix="/api")

MAX_ID = 2**31 - 1
MAX_CALLS = 1000


class ApiError(HTTPException):
    """An answer with a status and an error in words."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


@bp.before_request
def _csrf_for_cookie_sessions() -> None:
    # A program with a token needs no CSRF token; a browser session writing does.
    if request.method not in ("GET", "HEAD", "OPTIONS") and not via_token():
        csrf.protect()


def _db() -> Any:
    return transaction(runtime().sessions)


def _zone() -> Any:
    return runtime().settings.timezone


def _body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise ApiError(400, "the body must be a JSON object (Content-Type: application/json)")
    return data


def _text(data: dict[str, Any], name: str, *, required: bool) -> str | None:
    value = data.get(name)
    if value is None:
        if required:
            raise ApiError(422, f"{name} is required")
        return None
    if not isinstance(value, str):
        raise ApiError(422, f"{name} must be a string")
    return value


def _time(value: str, name: str) -> datetime:
    try:
        return parse_local(value, _zone())
    except LocalTimeError as exc:
        raise ApiError(422, f"{name}: {exc}") from None


def _query_time(name: str) -> datetime | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    try:
        return parse_local(raw, _zone())
    except LocalTimeError as exc:
        raise ApiError(400, f"{name}: {exc}") from None


def absence_row(item: Absence) -> dict[str, Any]:
    return {
        "id": item.id,
        "staff": item.staff.key,
        "start": local_iso(item.starts_at, _zone()),
        "end": local_iso(item.ends_at, _zone()),
        "substitute": item.substitute.key,
        "note": item.note,
    }


@bp.get("/openapi.json")
@public
def openapi_json() -> ResponseReturnValue:
    document = current_app.extensions.get("callcenter.openapi")
    if document is None:
        document = current_app.extensions["callcenter.openapi"] = openapi.describe(current_app)
    return jsonify(document)


@bp.get("/me")
@allow(*SIGNED_IN)
@operation(
    summary="Who is signed in",
    responses={200: json_response("the signed-in user", ref("Me"))},
    errors=(401,),
)
def me() -> ResponseReturnValue:
    who = viewer()
    return jsonify({"username": who.username, "role": who.role, "staff": who.staff_key})


@bp.get("/absences")
@allow("staff", "supervisor")
@operation(
    summary="Absences in force and to come (staff: their own)",
    responses={200: json_response("absences", {"type": "array", "items": ref("Absence")})},
)
def absences_list() -> ResponseReturnValue:
    who = viewer()
    with _db() as session:
        rows = [
            absence_row(item)
            for item in directory.list_absences(session, current_after=runtime().now())
            if who.sees_everyone or item.staff_id == who.staff_id
        ]
    return jsonify(rows)


@bp.post("/absences")
@allow("staff", "supervisor")
@operation(
    summary="Record an absence with a substitute (the command line's rules apply)",
    body="NewAbsence",
    responses={201: json_response("the absence", ref("Absence"))},
    errors=(400, 401, 403, 422),
)
def absences_add() -> ResponseReturnValue:
    who = viewer()
    data = _body()
    staff_key = _text(data, "staff", required=False)
    if not who.sees_everyone:
        if staff_key is not None and staff_key != who.staff_key:
            raise ApiError(403, "staff may record absences only for themselves")
        staff_key = who.staff_key
    if staff_key is None:
        raise ApiError(422, "staff is required")
    start = _time(str(_text(data, "start", required=True)), "start")
    end = _time(str(_text(data, "end", required=True)), "end")
    substitute = str(_text(data, "substitute", required=True))
    note = _text(data, "note", required=False)
    if note is not None and len(note) > 1000:
        raise ApiError(422, "note: at most 1000 characters")
    try:
        with _db() as session:
            added = directory.add_absence(
                session,
                staff_key,
                starts_at=start,
                ends_at=end,
                substitute_key=substitute,
                note=note or None,
            )
            row = absence_row(added)
    except directory.DirectoryError as exc:
        raise ApiError(422, str(exc)) from None
    log.info("absence %s added by user %s", row["id"], who.user_id)
    return jsonify(row), 201


def _visible_absence(session: Session, who: Viewer, absence_id: int) -> Absence:
    found = session.get(Absence, absence_id) if absence_id <= MAX_ID else None
    if found is None or found.cancelled_at is not None:
        raise ApiError(404, f"no absence {absence_id}")
    if not who.sees_everyone and found.staff_id != who.staff_id:
        raise ApiError(404, f"no absence {absence_id}")
    return found


@bp.delete("/absences/<int:absence_id>")
@allow("staff", "supervisor")
@operation(
    summary="Cancel an absence",
    parameters=[path_id("absence_id")],
    responses={204: {"description": "cancelled"}},
    errors=(401, 403, 404),
)
def absences_cancel(absence_id: int) -> ResponseReturnValue:
    who = viewer()
    with _db() as session:
        found = _visible_absence(session, who, absence_id)
        directory.cancel_absence(session, found.id, now=runtime().now())
    log.info("absence %s cancelled by user %s", absence_id, who.user_id)
    return Response(status=204)


@bp.get("/calls")
@allow("staff", "supervisor")
@operation(
    summary="The call log, oldest first (staff: their own calls)",
    parameters=[
        query("since", {"type": "string"}, "ISO 8601; without an offset, local time"),
        query("until", {"type": "string"}, "ISO 8601, excluded; without an offset, local time"),
        query("staff", {"type": "string"}, "calls answered by this staff KEY"),
        query("outcome", {"type": "string", "enum": openapi.OUTCOMES}, "only this outcome"),
        query(
            "limit",
            {"type": "integer", "minimum": 1, "maximum": MAX_CALLS},
            f"at most this many (default and most {MAX_CALLS})",
        ),
    ],
    responses={200: json_response("calls", {"type": "array", "items": ref("Call")})},
    errors=(400, 401, 403),
)
def calls_list() -> ResponseReturnValue:
    who = viewer()
    outcome = request.args.get("outcome") or None
    if outcome is not None and outcome not in listing.OUTCOMES:
        raise ApiError(400, f"outcome must be one of {', '.join(listing.OUTCOMES)}")
    raw_limit = request.args.get("limit", "")
    if raw_limit and not (raw_limit.isdigit() and 1 <= int(raw_limit) <= MAX_CALLS):
        raise ApiError(400, f"limit must be a whole number from 1 to {MAX_CALLS}")
    limit = int(raw_limit) if raw_limit else MAX_CALLS
    since, until = _query_time("since"), _query_time("until")
    with _db() as session:
        where = listing.CallFilter(
            since=since,
            until=until,
            staff=request.args.get("staff") or None,
            outcome=outcome,
            own=who.own_staff(session),
            nothing=who.sees_nothing(),
        )
        rows = [
            listing.call_row(call, key, _zone())
            for call, key in listing.list_calls(session, where, limit=limit)
        ]
    return jsonify(rows)


@bp.get("/callbacks")
@allow("staff", "supervisor")
@operation(
    summary="Callback requests, soonest due first (staff: those of their calls)",
    parameters=[
        query("status", {"type": "string", "enum": ["open", "done"]}, "default: open"),
    ],
    responses={
        200: json_response("callback requests", {"type": "array", "items": ref("Callback")})
    },
    errors=(400, 401, 403),
)
def callbacks_list() -> ResponseReturnValue:
    who = viewer()
    status = request.args.get("status") or "open"
    if status not in ("open", "done"):
        raise ApiError(400, "status must be open or done")
    with _db() as session:
        rows = [
            listing.callback_row(item, _zone())
            for item in callbacks_module.list_callbacks(
                session, status=status, own=who.own_staff(session), nothing=who.sees_nothing()
            )
        ]
    return jsonify(rows)


@bp.post("/callbacks/<int:request_id>/done")
@allow("staff", "supervisor")
@operation(
    summary="Close a callback request, with a note",
    parameters=[path_id("request_id")],
    body="Done",
    responses={200: json_response("the closed request", ref("Callback"))},
    errors=(400, 401, 403, 404, 422),
)
def callbacks_done(request_id: int) -> ResponseReturnValue:
    who = viewer()
    data = _body()
    note = _text(data, "note", required=False)
    if note is not None and len(note) > 2000:
        raise ApiError(422, "note: at most 2000 characters")
    try:
        with _db() as session:
            found = session.get(CallbackRequest, request_id) if request_id <= MAX_ID else None
            own = who.own_staff(session)
            if (
                found is None
                or who.sees_nothing()
                or (own is not None and not listing.callback_is_own(session, found, own))
            ):
                raise ApiError(404, f"no callback request {request_id}")
            done = callbacks_module.mark_done(
                session, found.id, now=runtime().now(), note=note or None
            )
            row = listing.callback_row(done, _zone())
    except callbacks_module.CallbackError as exc:
        raise ApiError(422, str(exc)) from None
    log.info("callback request %s done by user %s", request_id, who.user_id)
    return jsonify(row)
