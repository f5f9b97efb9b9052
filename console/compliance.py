"""The compliance pages: the retention log, verification, what is due, legal holds, the access
trail, and finding and listening to a recording with a stated reason.

The same domain functions as `callcenter retention ...` and the API; each view parses its form,
calls one of them, and redirects (POST) or renders (GET). Refusals are shown in plain words.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterator
from datetime import date
from typing import Any

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _

from callcenter.adapters.storage import StorageUnavailable
from callcenter.audit import export, search
from callcenter.audit.events import RetentionEvent
from callcenter.calls.listing import local_day_bounds
from callcenter.db import transaction
from callcenter.directory import service as directory
from callcenter.localtime import local_iso
from callcenter.recordings import access as recording_access
from callcenter.recordings import due, holds, lookup, verification
from callcenter.recordings.states import AccessPurpose
from console.access import allow
from console.api import audio_address, grant_access
from console.auth import db as _db
from console.auth import now as _now
from console.auth import runtime, viewer
from console.auth import zone as _zone
from console.security import csrf

log = logging.getLogger(__name__)

bp = Blueprint("compliance", __name__, url_prefix="/console")

PAGE_SIZE = 50
DEFAULT_SAMPLE = verification.DAILY_SAMPLE
MAX_DUE_DAYS = 366


@bp.before_request
def _csrf_for_forms() -> None:
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        csrf.protect()


def _page() -> int:
    raw = request.args.get("page", "")
    if not raw:
        return 1
    if not raw.isdigit() or not 1 <= int(raw) <= 1_000_000:
        abort(400, _("Lapas numuram jābūt veselam skaitlim."))
    return int(raw)


def _day(name: str) -> date | None:
    raw = request.args.get(name, "").strip()
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        abort(400, _("Datums jāraksta kā 2026-03-02."))


def _chain_state(session: Any) -> dict[str, Any]:
    """The chain's state as the last verification found it, and the log's head now."""
    last = verification.last_run(session)
    now = _now()
    return {
        "last": last,
        "stale": last is None or now - last.at > verification.STALE_AFTER,
        "head": search.head(session),
    }


# The log ---------------------------------------------------------------------------------


@bp.get("/retention")
@allow("compliance")
def retention_log() -> ResponseReturnValue:
    event = request.args.get("event", "").strip() or None
    if event is not None and event not in set(RetentionEvent):
        abort(400, _("Nezināms notikums."))
    recording_sid = request.args.get("recording", "").strip() or None
    first, last = _day("since"), _day("until")
    zone = _zone()
    where = search.LogFilter(
        event=event,
        recording_sid=recording_sid,
        since=local_day_bounds(first, zone)[0] if first else None,
        until=local_day_bounds(last, zone)[1] if last else None,
    )
    page = _page()
    with _db() as session:
        total = search.count(session, where)
        entries = search.newest_first(
            session, where, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE
        )
        body = render_template(
            "retention_log.html",
            entries=entries,
            events=[str(e) for e in RetentionEvent],
            filters={
                "event": event or "",
                "recording": recording_sid or "",
                "since": first.isoformat() if first else "",
                "until": last.isoformat() if last else "",
            },
            page=page,
            pages=max(1, (total + PAGE_SIZE - 1) // PAGE_SIZE),
            total=total,
            chain=_chain_state(session),
        )
    return body


@bp.get("/retention/log.<fmt>")
@allow("compliance")
def retention_log_export(fmt: str) -> ResponseReturnValue:
    """The same file as `callcenter retention log --format csv|json`."""
    if fmt not in export.FORMATS:
        abort(404)
    first = _day("since")
    zone = _zone()
    since = local_day_bounds(first, zone)[0] if first else None
    sessions = runtime().sessions

    def pieces() -> Iterator[str]:
        with transaction(sessions) as session:
            yield from export.iter_log(session, timezone=zone, since=since, fmt=fmt)

    mimetype = "text/csv" if fmt == "csv" else "application/json"
    response = Response(pieces(), mimetype=mimetype)
    stamp = _now().astimezone(zone).strftime("%Y%m%d-%H%M")
    response.headers["Content-Disposition"] = f'attachment; filename="retention-log-{stamp}.{fmt}"'
    return response


# Verification ----------------------------------------------------------------------------


def _verification_page(
    error: str | None = None, status: int = 200, result: verification.RunResult | None = None
) -> Response:
    with _db() as session:
        body = render_template(
            "verification.html",
            chain=_chain_state(session),
            runs=verification.history(session, limit=30),
            result=result,
            default_sample=DEFAULT_SAMPLE,
            error=error,
        )
    return Response(body, status=status)


@bp.get("/retention/verify")
@allow("compliance")
def verify_page() -> ResponseReturnValue:
    return _verification_page()


@bp.post("/retention/verify")
@allow("compliance")
def verify_run() -> ResponseReturnValue:
    who = viewer()
    scope = request.form.get("scope", "sample")
    sample: int | None = None
    if scope == "sample":
        raw = request.form.get("sample", "").strip() or str(DEFAULT_SAMPLE)
        if not raw.isdigit() or not 1 <= int(raw) <= 1_000_000:
            return _verification_page(
                _("Izlasei jābūt veselam skaitlim no 1 līdz 1000000."), status=422
            )
        sample = int(raw)
    elif scope != "all":
        return _verification_page(_("Izvēlieties izlasi vai visu."), status=422)
    rt = runtime()
    try:
        with _db() as session:
            result = verification.run(
                session, rt.storage, now=rt.now(), by=who.username, sample=sample
            )
    except StorageUnavailable as exc:
        log.error("verification by user %s: %s", who.user_id, exc)
        return _verification_page(
            _(
                "Glabātuve nav pieejama, tāpēc nekas netika pārbaudīts (tā nav neatbilstība): "
                "%(problem)s. Pārbaudiet iestatījumu RECORDINGS_URL un glabātuves pakalpojumu.",
                problem=exc.problem,
            ),
            status=503,
        )
    log.info("verification by user %s: ok=%s", who.user_id, result.ok)
    return _verification_page(result=result)


# What is due -----------------------------------------------------------------------------


@bp.get("/retention/due")
@allow("compliance")
def due_page() -> ResponseReturnValue:
    raw = request.args.get("days", "")
    if raw and not (raw.isdigit() and int(raw) <= MAX_DUE_DAYS):
        abort(400, _("Dienu skaitam jābūt no 0 līdz %(most)s.", most=MAX_DUE_DAYS))
    days = int(raw) if raw else 7
    with _db() as session:
        items = due.upcoming(session, now=_now(), days=days)
    return render_template(
        "due.html",
        items=items,
        days=days,
        now=_now(),
        held=sum(1 for item in items if item.on_hold),
    )


# Legal holds -----------------------------------------------------------------------------


def _holds_page(error: str | None = None, form: dict[str, str] | None = None) -> Response:
    with _db() as session:
        body = render_template(
            "holds.html", holds=holds.active(session), error=error, form=form or {}
        )
    return Response(body, status=422 if error else 200)


@bp.get("/retention/holds")
@allow("compliance")
def holds_page() -> ResponseReturnValue:
    return _holds_page(form={"recording_sid": request.args.get("recording", "")})


@bp.post("/retention/holds")
@allow("compliance")
def hold_place() -> ResponseReturnValue:
    who = viewer()
    form = {k: request.form.get(k, "").strip() for k in ("recording_sid", "reason")}
    if not form["recording_sid"]:
        return _holds_page(_("Norādiet ieraksta SID (RE…)."), form)
    if not form["reason"]:
        return _holds_page(_("Norādiet iemeslu: bez tā aizturēt nevar."), form)
    try:
        with _db() as session:
            holds.place(
                session, form["recording_sid"], reason=form["reason"], actor=who.username,
                now=_now(),
            )  # fmt: skip
    except holds.HoldError as exc:
        return _holds_page(str(exc), form)
    log.info("hold placed on %s by user %s", form["recording_sid"], who.user_id)
    flash(_("Ieraksts %(sid)s aizturēts.", sid=form["recording_sid"]))
    return redirect(url_for("compliance.holds_page"))


@bp.post("/retention/holds/<recording_sid>/release")
@allow("compliance")
def hold_release(recording_sid: str) -> ResponseReturnValue:
    who = viewer()
    reason = request.form.get("reason", "").strip()
    if not reason:
        return _holds_page(_("Norādiet iemeslu, kāpēc aizturēšana beidzas."))
    now = _now()
    try:
        with _db() as session:
            hold = holds.release(session, recording_sid, reason=reason, actor=who.username, now=now)
            past_due = hold.recording.due_at <= now
    except holds.HoldError as exc:
        return _holds_page(str(exc))
    log.info("hold released on %s by user %s", recording_sid, who.user_id)
    if past_due:
        flash(_("Aizturēšana atcelta; ieraksts tiks dzēsts nākamajā tīrīšanā."))
    else:
        flash(_("Aizturēšana atcelta."))
    return redirect(url_for("compliance.holds_page"))


# The access trail ------------------------------------------------------------------------


def _trail_filters() -> dict[str, str]:
    return {
        "user": request.args.get("user", "").strip()[:64],
        "recording": request.args.get("recording", "").strip()[:64],
    }


@bp.get("/retention/access")
@allow("compliance")
def trail_page() -> ResponseReturnValue:
    filters = _trail_filters()
    page = _page()
    with _db() as session:
        total, records = recording_access.trail(
            session,
            actor=filters["user"] or None,
            recording_sid=filters["recording"] or None,
            limit=PAGE_SIZE,
            offset=(page - 1) * PAGE_SIZE,
        )
    return render_template(
        "trail.html",
        records=records,
        filters=filters,
        page=page,
        pages=max(1, (total + PAGE_SIZE - 1) // PAGE_SIZE),
        total=total,
    )


TRAIL_COLUMNS = ("seq", "at", "user", "recording_sid", "purpose", "reason", "recording")


@bp.get("/retention/access.csv")
@allow("compliance")
def trail_csv() -> ResponseReturnValue:
    filters = _trail_filters()
    zone = _zone()
    sessions = runtime().sessions

    def rows() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(TRAIL_COLUMNS)
        offset = 0
        with transaction(sessions) as session:
            while True:
                _total, records = recording_access.trail(
                    session,
                    actor=filters["user"] or None,
                    recording_sid=filters["recording"] or None,
                    limit=500,
                    offset=offset,
                )
                for item in records:
                    state = (
                        "deleted"
                        if item.recording_deleted
                        else ("held" if item.recording_on_hold else "kept")
                    )
                    writer.writerow(
                        (
                            item.seq,
                            local_iso(item.at, zone),
                            item.actor,
                            item.recording_sid,
                            item.purpose,
                            item.reason if item.reason is not None else "(redacted)",
                            state,
                        )
                    )
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
                if len(records) < 500:
                    return
                offset += 500

    response = Response(rows(), mimetype="text/csv")
    response.headers["Content-Disposition"] = 'attachment; filename="access-trail.csv"'
    return response


# Recordings: find, and listen with a stated reason (compliance, supervisor) ---------------


@bp.get("/recordings")
@allow("compliance", "supervisor")
def recordings_page() -> ResponseReturnValue:
    sid = request.args.get("sid", "").strip()[:64]
    day = _day("day")
    line = request.args.get("line", "").strip()[:20]
    searched = bool(sid or day or line)
    found: list[lookup.RecordingView] = []
    with _db() as session:
        lines = [item.number for item in directory.list_lines(session)]
        if searched:
            since, until = local_day_bounds(day, _zone()) if day else (None, None)
            found = lookup.find(session, sid=sid or None, since=since, until=until, line=line)
    return render_template(
        "recordings.html",
        found=found,
        searched=searched,
        lines=lines,
        filters={"sid": sid, "day": day.isoformat() if day else "", "line": line},
    )


def _recording_page(
    recording_sid: str,
    *,
    error: str | None = None,
    form: dict[str, str] | None = None,
    address: dict[str, Any] | None = None,
) -> Response:
    with _db() as session:
        found = lookup.get(session, recording_sid)
        if found is None:
            abort(404, _("Tāda ieraksta nav."))
        body = render_template(
            "recording.html",
            recording=found,
            purposes=[str(p) for p in AccessPurpose],
            error=error,
            form=form or {},
            address=address,
        )
    return Response(body, status=422 if error else 200)


@bp.get("/recordings/<recording_sid>")
@allow("compliance", "supervisor")
def recording_page(recording_sid: str) -> ResponseReturnValue:
    return _recording_page(recording_sid)


@bp.post("/recordings/<recording_sid>/access")
@allow("compliance", "supervisor")
def recording_access_ask(recording_sid: str) -> ResponseReturnValue:
    who = viewer()
    form = {
        "reason": request.form.get("reason", "").strip(),
        "purpose": request.form.get("purpose", str(AccessPurpose.LISTEN)),
    }
    if not form["reason"]:
        return _recording_page(
            recording_sid, error=_("Norādiet iemeslu, kāpēc jums vajag šo ierakstu."), form=form
        )
    try:
        granted = grant_access(who, recording_sid, form["reason"], form["purpose"])
    except recording_access.AccessRefused as exc:
        return _recording_page(recording_sid, error=str(exc), form=form)
    path, expires_at = audio_address(granted, who.user_id)
    return _recording_page(
        recording_sid,
        address={"url": path, "expires_at": expires_at, "purpose": str(granted.purpose)},
    )
