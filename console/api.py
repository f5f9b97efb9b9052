"""The JSON API of the contract's table: the same domain functions and rules as the pages.

Errors are `{"error": "..."}` in plain words: 400 for what cannot be read (not JSON, a bad
parameter), 401 without a sign-in, 403 for a role that may not, 404 for what does not exist
or is not the caller's, 422 for what the command line would refuse. Each write is one
transaction: a refusal writes nothing.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from flask import (
    Blueprint,
    Response,
    current_app,
    jsonify,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_login import current_user
from sqlalchemy.orm import Session
from werkzeug.exceptions import HTTPException

from callcenter.adapters.storage import StorageUnavailable
from callcenter.audit import export
from callcenter.calls import callbacks as callbacks_module
from callcenter.calls import listing
from callcenter.calls.models import CallbackRequest
from callcenter.db import transaction
from callcenter.directory import service as directory
from callcenter.directory.models import Absence
from callcenter.localtime import LocalTimeError, local_iso, parse_local
from callcenter.recordings import access as recording_access
from callcenter.recordings import due, holds, lookup, verification
from callcenter.recordings.states import AccessPurpose
from console import media, openapi
from console.access import SIGNED_IN, allow, public, signed_address
from console.auth import Viewer, runtime, via_token, viewer
from console.openapi import json_response, operation, path_id, path_string, query, ref
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
    if "\x00" in value:
        raise ApiError(422, f"{name} must not hold a NUL character")
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


# Retention (compliance) ----------------------------------------------------------------------

MAX_UPCOMING_DAYS = 3_650
SID = re.compile(r"^RE[0-9a-fA-F]{32}$")


def _recording_sid(value: str, status: int = 404) -> str:
    if not SID.match(value):
        raise ApiError(status, f"no recording {value[:40]!r}: a recording SID is RE and 32 hex")
    return value


def hold_row(view: holds.HoldView) -> dict[str, Any]:
    return {
        "recording_sid": view.recording_sid,
        "call_sid": view.call_sid,
        "status": view.status,
        "due_at": local_iso(view.due_at, _zone()),
        "placed_at": local_iso(view.placed_at, _zone()),
        "placed_by": view.placed_by,
        "reason": view.reason,
    }


@bp.get("/retention/log")
@allow("compliance")
@operation(
    summary="The retention log, oldest first (entries as `retention log --format json`)",
    parameters=[query("since", {"type": "string"}, "ISO 8601; without an offset, local time")],
    responses={200: json_response("entries", {"type": "array", "items": ref("LogEntry")})},
    errors=(400, 401, 403),
)
def retention_log() -> ResponseReturnValue:
    since = _query_time("since")
    zone = _zone()
    sessions = runtime().sessions

    def pieces() -> Iterator[str]:
        # Streamed a page of entries at a time: a long log never sits in memory whole. The
        # generator needs no request context: what it uses is read before it starts.
        with transaction(sessions) as session:
            yield from export.iter_log(session, timezone=zone, since=since, fmt="json")

    return Response(pieces(), mimetype="application/json")


@bp.get("/retention/holds")
@allow("compliance")
@operation(
    summary="The legal holds in force, oldest first",
    responses={200: json_response("holds", {"type": "array", "items": ref("Hold")})},
)
def retention_holds() -> ResponseReturnValue:
    with _db() as session:
        return jsonify([hold_row(view) for view in holds.active(session)])


def _hold_view(session: Session, recording_sid: str) -> dict[str, Any]:
    found = [view for view in holds.active(session) if view.recording_sid == recording_sid]
    return hold_row(found[0])


@bp.post("/retention/holds")
@allow("compliance")
@operation(
    summary="Place a legal hold (a reason is required): not deleted until released",
    body="NewHold",
    responses={201: json_response("the hold", ref("Hold"))},
    errors=(400, 401, 403, 404, 422),
)
def retention_hold_place() -> ResponseReturnValue:
    who = viewer()
    data = _body()
    sid = _recording_sid(str(_text(data, "recording_sid", required=True)), 422)
    reason = _text(data, "reason", required=True) or ""
    try:
        with _db() as session:
            if lookup.get(session, sid) is None:
                raise ApiError(404, f"no recording {sid}")
            holds.place(session, sid, reason=reason, actor=who.username, now=runtime().now())
            row = _hold_view(session, sid)
    except holds.HoldError as exc:
        raise ApiError(422, str(exc)) from None
    log.info("hold placed on %s by user %s", sid, who.user_id)
    return jsonify(row), 201


@bp.delete("/retention/holds/<recording_sid>")
@allow("compliance")
@operation(
    summary="Release a legal hold (a reason is required); past due, it goes at the next sweep",
    parameters=[path_string("recording_sid")],
    body="Release",
    responses={200: json_response("the released hold", ref("ReleasedHold"))},
    errors=(400, 401, 403, 404, 422),
)
def retention_hold_release(recording_sid: str) -> ResponseReturnValue:
    who = viewer()
    sid = _recording_sid(recording_sid)
    data = _body()
    reason = _text(data, "reason", required=True) or ""
    now = runtime().now()
    try:
        with _db() as session:
            if lookup.get(session, sid) is None:
                raise ApiError(404, f"no recording {sid}")
            hold = holds.release(session, sid, reason=reason, actor=who.username, now=now)
            row = {
                "recording_sid": sid,
                "placed_at": local_iso(hold.placed_at, _zone()),
                "placed_by": hold.placed_by,
                "released_at": local_iso(now, _zone()),
                "released_by": hold.released_by,
                "release_reason": hold.release_reason,
                "due_at": local_iso(hold.recording.due_at, _zone()),
            }
    except holds.HoldError as exc:
        raise ApiError(422, str(exc)) from None
    log.info("hold released on %s by user %s", sid, who.user_id)
    return jsonify(row)


@bp.get("/retention/upcoming")
@allow("compliance")
@operation(
    summary="What will be deleted when: due within `days` (overdue and held included)",
    parameters=[
        query(
            "days",
            {"type": "integer", "minimum": 0, "maximum": MAX_UPCOMING_DAYS},
            "how far ahead (default 7)",
        )
    ],
    responses={200: json_response("recordings due", {"type": "array", "items": ref("Due")})},
    errors=(400, 401, 403),
)
def retention_upcoming() -> ResponseReturnValue:
    raw = request.args.get("days", "")
    if raw and not (raw.isdigit() and int(raw) <= MAX_UPCOMING_DAYS):
        raise ApiError(400, f"days must be a whole number from 0 to {MAX_UPCOMING_DAYS}")
    days = int(raw) if raw else 7
    with _db() as session:
        rows = [
            {
                "recording_sid": item.recording_sid,
                "call_sid": item.call_sid,
                "due_at": local_iso(item.due_at, _zone()),
                "status": item.status,
                "on_hold": item.on_hold,
            }
            for item in due.upcoming(session, now=runtime().now(), days=days)
        ]
    return jsonify(rows)


@bp.post("/retention/verify")
@allow("compliance")
@operation(
    summary="Verify the log's chain and storage; the result is kept in the history",
    body="VerifyRequest",
    body_required=False,
    responses={200: json_response("the result", ref("Verification"))},
    errors=(400, 401, 403, 503),
)
def retention_verify() -> ResponseReturnValue:
    who = viewer()
    data = request.get_json(silent=True) if request.get_data() else {}
    if not isinstance(data, dict):
        raise ApiError(400, "the body must be a JSON object, or empty")
    sample = data.get("sample")
    if sample is not None and (
        not isinstance(sample, int) or isinstance(sample, bool) or not 1 <= sample <= 1_000_000
    ):
        raise ApiError(400, "sample must be a whole number from 1 to 1000000, or null (all)")
    rt = runtime()
    try:
        with _db() as session:
            result = verification.run(
                session, rt.storage, now=rt.now(), by=who.username, sample=sample
            )
    except StorageUnavailable as exc:
        raise ApiError(503, f"{exc}; nothing was judged") from None
    log.info("verification by user %s: ok=%s", who.user_id, result.ok)
    return jsonify({"ok": result.ok, "problems": result.problems, "head": result.head})


# Recordings: listening with a stated reason (compliance, supervisor) ------------------------


def audio_address(access: recording_access.Access, user_id: int) -> tuple[str, datetime]:
    """Sign the audio's address for a committed access; return its path and expiry."""
    rt = runtime()
    token, expires_at = media.make_token(
        str(rt.settings.secret_key), access, user_id=user_id, now=rt.now()
    )
    path = url_for("api.recording_audio", recording_sid=access.recording_sid, token=token)
    return path, expires_at


def grant_access(who: Viewer, recording_sid: str, reason: str, purpose: str) -> Any:
    """Write and commit `accessed`, then return the granted access (the pages use it too)."""
    with _db() as session:
        granted = recording_access.grant(
            session,
            recording_sid,
            actor=who.username,
            reason=reason,
            purpose=purpose,
            now=runtime().now(),
        )
    # Committed: the access is on the record before any address of the audio exists.
    log.info(
        "access to %s (%s) by user %s, entry %s",
        recording_sid,
        granted.purpose,
        who.user_id,
        granted.entry_seq,
    )
    return granted


@bp.post("/recordings/<recording_sid>/access")
@allow("compliance", "supervisor")
@operation(
    summary="Ask to listen to or download a recording, with a reason; logged as `accessed`",
    parameters=[path_string("recording_sid")],
    body="AccessRequest",
    responses={200: json_response("a short-lived address of the audio", ref("AudioAddress"))},
    errors=(400, 401, 403, 404, 422),
)
def recording_access_ask(recording_sid: str) -> ResponseReturnValue:
    who = viewer()
    sid = _recording_sid(recording_sid)
    data = _body()
    reason = data.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise ApiError(400, "a reason is required: why you need to hear this recording")
    purpose = data.get("purpose", str(AccessPurpose.LISTEN))
    if purpose not in [str(p) for p in AccessPurpose]:
        raise ApiError(400, "purpose must be listen or download")
    with _db() as session:
        if lookup.get(session, sid) is None:
            raise ApiError(404, f"no recording {sid}")
    try:
        granted = grant_access(who, sid, reason, purpose)
    except recording_access.AccessRefused as exc:
        raise ApiError(422, str(exc)) from None
    path, expires_at = audio_address(granted, who.user_id)
    base = runtime().settings.public_base_url or request.host_url
    return jsonify({"url": base.rstrip("/") + path, "expires_at": local_iso(expires_at, _zone())})


@bp.get("/recordings/<recording_sid>/audio/<token>")
@signed_address
@operation(
    summary="The audio of a signed address (whoever holds it, until it expires); Range: 206",
    parameters=[path_string("recording_sid"), path_string("token")],
    responses={
        200: {"description": "the audio", "content": {media.MEDIA_TYPE: {}}},
        206: {"description": "the range asked for", "content": {media.MEDIA_TYPE: {}}},
        416: {"description": "the range is beyond the audio"},
    },
    errors=(403, 410),
    secured=False,
)
def recording_audio(recording_sid: str, token: str) -> ResponseReturnValue:
    rt = runtime()
    try:
        grant = media.read_token(
            str(rt.settings.secret_key), token, recording_sid=recording_sid, now=rt.now()
        )
        if current_user.is_authenticated and viewer().user_id != grant.user_id:
            raise media.Refused(403, "this address was made for another user")
        with _db() as session:
            key = media.check_grant(session, grant)
        answer = media.answer(
            rt.storage, key, range_header=request.headers.get("Range"), grant=grant
        )
    except media.Refused as exc:
        raise ApiError(exc.code, str(exc)) from None
    except KeyError:
        raise ApiError(410, "the recording's audio is missing from storage") from None
    response = Response(answer.body, status=answer.status, direct_passthrough=True)
    for name, value in answer.headers.items():
        response.headers[name] = value
    # The address is the secret: it must not be kept by caches or sent on as a referrer.
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
