"""The console's pages: today, absences, calls, callbacks, the chart, directory, users.

Each view parses its form into typed values, calls the domain function the command line
calls, and redirects (POST) or renders (GET). Refusals are shown in plain words on the page.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask import (
    session as cookie_session,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import login_user, logout_user
from sqlalchemy.orm import Session

from callcenter.accounts import service as accounts
from callcenter.accounts.models import ROLES
from callcenter.calls import callbacks as callbacks_module
from callcenter.calls import listing
from callcenter.calls.intake import hours_of
from callcenter.calls.models import CallbackRequest
from callcenter.directory import service as directory
from callcenter.directory.models import Absence, Staff
from callcenter.localtime import LocalTimeError, parse_local
from console import chart
from console.access import SIGNED_IN, allow, public
from console.auth import Viewer, runtime, viewer
from console.auth import db as _db
from console.auth import now as _now
from console.auth import zone as _zone
from console.messages import directory_refusal, time_refusal
from console.security import csrf

log = logging.getLogger(__name__)

bp = Blueprint(
    "console",
    __name__,
    url_prefix="/console",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)


@bp.before_request
def _csrf_for_forms() -> None:
    # Every form of the console carries the token; a POST without it is refused (400).
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        csrf.protect()


PAGE_SIZE = 50
CHART_DAYS = 30


def _local(at: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return at.astimezone(_zone()).strftime(fmt) if at else ""


@bp.app_template_filter("local")
def local_filter(at: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return _local(at, fmt)


def _safe_next(target: str | None) -> str:
    """Only our own pages are followed after sign-in (no open redirect)."""
    if (
        target
        and target.startswith("/console/")
        and not urlsplit(target).netloc
        and "\\" not in target
    ):
        return target
    return url_for("console.today")


# Sign-in -----------------------------------------------------------------------------------


@bp.route("/login", methods=["GET", "POST"])
@public
def login() -> ResponseReturnValue:
    if request.method == "GET":
        return render_template("login.html", next=request.args.get("next", ""))
    username = request.form.get("username", "").strip()[:100]
    password = request.form.get("password", "")
    target = request.form.get("next", "")
    ref = accounts.hash_token(username.lower())[:12]
    try:
        with _db() as session:
            result = accounts.sign_in(session, username, password, now=_now())
            signed_in = Viewer.of(result.user) if result.user else None
    except accounts.SignInLocked as exc:
        log.warning("sign-in refused: locked out (account ref %s)", ref)
        wait = max(1, int((exc.until - _now()).total_seconds()))
        body = render_template(
            "login.html",
            next=target,
            error=_("Pārāk daudz neveiksmīgu mēģinājumu. Mēģiniet vēlreiz pēc %(time)s.")
            % {"time": _local(exc.until, "%H:%M")},
        )
        return Response(body, status=429, headers={"Retry-After": str(wait)})
    if signed_in is None:
        log.warning("sign-in refused: wrong username or password (account ref %s)", ref)
        body = render_template(
            "login.html", next=target, error=_("Nepareizs lietotājvārds vai parole.")
        )
        return Response(body, status=401)
    lang = cookie_session.get("lang")
    cookie_session.clear()  # a fresh session: nothing from before sign-in carries over
    if lang:
        cookie_session["lang"] = lang
    cookie_session.permanent = True
    login_user(signed_in)
    log.info("signed in: user %s (%s)", signed_in.user_id, signed_in.role)
    return redirect(_safe_next(target))


@bp.post("/logout")
@allow(*SIGNED_IN)
def logout() -> ResponseReturnValue:
    who = viewer()
    logout_user()
    lang = cookie_session.get("lang")
    cookie_session.clear()
    if lang:
        cookie_session["lang"] = lang
    log.info("signed out: user %s", who.user_id)
    return redirect(url_for("console.login"))


# Today -------------------------------------------------------------------------------------


@bp.get("/")
@allow(*SIGNED_IN)
def today() -> ResponseReturnValue:
    who = viewer()
    if who.role not in ("staff", "supervisor"):
        return render_template("home.html")
    now = _now()
    zone = _zone()
    settings = runtime().settings
    local_today = now.astimezone(zone).date()
    with _db() as session:
        lines = []
        for line in directory.list_lines(session):
            hours = hours_of(session, settings, line.hours, now)
            is_open = hours.is_open(now)
            upcoming = hours.next_opening(now)
            lines.append(
                {
                    "number": line.number,
                    "target": directory.describe_target(session, line),
                    "always": hours.weekly.always,
                    "open": is_open,
                    "until": hours.open_until(now),
                    "next_opening": upcoming[0] if upcoming and not is_open else None,
                }
            )
        next_change = next(iter(directory.list_hours_changes(session, since=local_today)), None)
        own = who.own_staff(session)
        away = [
            absence
            for absence in directory.list_absences(session, current_after=now)
            if absence.starts_at <= now + timedelta(days=1)
            and (own is None or own.id in (absence.staff_id, absence.substitute_id))
            and not who.sees_nothing()
        ]
        where = listing.CallFilter(own=own, nothing=who.sees_nothing())
        counts = listing.daily_counts(
            session, where, first=local_today, last=local_today, zone=zone
        )[0]
        open_callbacks = callbacks_module.list_callbacks(
            session, status="open", own=own, nothing=who.sees_nothing()
        )
        _start, end_of_day = listing.local_day_bounds(local_today, zone)
        overdue = [c for c in open_callbacks if c.due_at < now]
        due_today = [c for c in open_callbacks if now <= c.due_at < end_of_day]
        return render_template(
            "today.html",
            lines=lines,
            next_change=next_change,
            away=away,
            counts=counts,
            overdue=overdue,
            due_today=due_today,
            now=now,
        )


# Absences ----------------------------------------------------------------------------------


def _colleagues(session: Session, who: Viewer) -> list[Staff]:
    """Active staff, for the substitute picker (never oneself)."""
    return [
        person
        for person in directory.list_staff(session)
        if person.active and person.id != who.staff_id
    ]


def _visible_absence(session: Session, who: Viewer, absence_id: int) -> Absence:
    absence = session.get(Absence, absence_id) if absence_id < 2**31 else None
    if absence is None or absence.cancelled_at is not None:
        abort(404, _("Tādas prombūtnes nav."))
    if not who.sees_everyone and absence.staff_id != who.staff_id:
        abort(404, _("Tādas prombūtnes nav."))
    return absence


@bp.get("/absences")
@allow("staff", "supervisor")
def absences() -> ResponseReturnValue:
    return _absences_page()


def _absences_page(error: str | None = None, form: dict[str, str] | None = None) -> Response:
    who = viewer()
    with _db() as session:
        rows = [
            absence
            for absence in directory.list_absences(session, current_after=_now())
            if who.sees_everyone or absence.staff_id == who.staff_id
        ]
        staff = [p for p in directory.list_staff(session) if p.active]
        body = render_template(
            "absences.html",
            absences=rows,
            staff=staff,
            colleagues=_colleagues(session, who),
            error=error,
            form=form or {},
        )
    return Response(body, status=422 if error else 200)


@bp.post("/absences")
@allow("staff", "supervisor")
def absence_add() -> ResponseReturnValue:
    who = viewer()
    form = {k: request.form.get(k, "").strip() for k in ("staff", "start", "end", "substitute")}
    form["note"] = request.form.get("note", "").strip()
    staff_key = form["staff"] if who.sees_everyone else (who.staff_key or "")
    fields = {"start": _("Sākums"), "end": _("Beigas")}
    times: dict[str, datetime] = {}
    for name, label in fields.items():
        if not form[name]:
            return _absences_page(_("%(field)s: jānorāda.", field=label), form)
        try:
            times[name] = parse_local(form[name], _zone())
        except LocalTimeError as exc:
            return _absences_page(time_refusal(label, exc), form)
    if not form["substitute"]:
        return _absences_page(_("Izvēlieties aizvietotāju."), form)
    try:
        with _db() as session:
            added = directory.add_absence(
                session,
                staff_key,
                starts_at=times["start"],
                ends_at=times["end"],
                substitute_key=form["substitute"],
                note=form["note"][:1000] or None,
            )
            added_id = added.id
    except directory.DirectoryError as exc:
        return _absences_page(directory_refusal(exc), form)
    log.info("absence %s added by user %s", added_id, who.user_id)
    flash(_("Prombūtne saglabāta."))
    return redirect(url_for("console.absences"))


@bp.post("/absences/<int:absence_id>/cancel")
@allow("staff", "supervisor")
def absence_cancel(absence_id: int) -> ResponseReturnValue:
    who = viewer()
    with _db() as session:
        absence = _visible_absence(session, who, absence_id)
        directory.cancel_absence(session, absence.id, now=_now())
    log.info("absence %s cancelled by user %s", absence_id, who.user_id)
    flash(_("Prombūtne atcelta."))
    return redirect(url_for("console.absences"))


# Calls -------------------------------------------------------------------------------------


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name, "")
    if not raw:
        return default
    if not raw.isdigit():
        abort(400, _("%(name)s: jābūt veselam skaitlim.", name=name))
    return max(low, min(high, int(raw)))


@bp.get("/calls")
@allow("staff", "supervisor")
def calls() -> ResponseReturnValue:
    who = viewer()
    zone = _zone()
    day_raw = request.args.get("day", "").strip()
    person = request.args.get("person", "").strip() or None
    outcome = request.args.get("outcome", "").strip() or None
    if outcome is not None and outcome not in listing.OUTCOMES:
        abort(400, _("Nezināms iznākums."))
    since = until = None
    if day_raw:
        try:
            day = date.fromisoformat(day_raw)
        except ValueError:
            abort(400, _("Datums jāraksta kā 2026-03-02."))
        since, until = listing.local_day_bounds(day, zone)
    page = _int_arg("page", 1, 1, 100_000)
    with _db() as session:
        where = listing.CallFilter(
            since=since,
            until=until,
            staff=person,
            outcome=outcome,
            own=who.own_staff(session),
            nothing=who.sees_nothing(),
        )
        total = listing.count_calls(session, where)
        rows = [
            listing.call_row(call, key, zone)
            for call, key in listing.list_calls(
                session,
                where,
                newest_first=True,
                limit=PAGE_SIZE,
                offset=(page - 1) * PAGE_SIZE,
            )
        ]
        staff = directory.list_staff(session)
    pages = max(1, (total + PAGE_SIZE - 1) // PAGE_SIZE)
    return render_template(
        "calls.html",
        calls=rows,
        staff=staff,
        outcomes=listing.OUTCOMES,
        filters={"day": day_raw, "person": person or "", "outcome": outcome or ""},
        page=page,
        pages=pages,
        total=total,
    )


# Callbacks ---------------------------------------------------------------------------------


def _visible_callback(session: Session, who: Viewer, request_id: int) -> CallbackRequest:
    found = session.get(CallbackRequest, request_id) if request_id < 2**31 else None
    if found is None:
        abort(404, _("Tāda atzvanīšanas pieprasījuma nav."))
    own = who.own_staff(session)
    if who.sees_nothing() or (own is not None and not listing.callback_is_own(session, found, own)):
        abort(404, _("Tāda atzvanīšanas pieprasījuma nav."))
    return found


@bp.get("/callbacks")
@allow("staff", "supervisor")
def callbacks() -> ResponseReturnValue:
    who = viewer()
    show = request.args.get("status", "open")
    if show not in ("open", "done"):
        abort(400, _("Statuss ir open vai done."))
    now = _now()
    with _db() as session:
        items = callbacks_module.list_callbacks(
            session, status=show, own=who.own_staff(session), nothing=who.sees_nothing()
        )
        rows = [(item, item.call.call_sid if item.call else None) for item in items]
    if show == "done":
        rows.reverse()  # the latest first
    return render_template(
        "callbacks.html",
        overdue=[r for r in rows if show == "open" and r[0].due_at < now],
        due=[r for r in rows if show != "open" or r[0].due_at >= now],
        show=show,
    )


@bp.post("/callbacks/<int:request_id>/done")
@allow("staff", "supervisor")
def callback_done(request_id: int) -> ResponseReturnValue:
    who = viewer()
    note = request.form.get("note", "").strip()[:2000] or None
    try:
        with _db() as session:
            found = _visible_callback(session, who, request_id)
            callbacks_module.mark_done(session, found.id, now=_now(), note=note)
    except callbacks_module.CallbackError:
        flash(_("Šis pieprasījums jau ir izpildīts."))
        return redirect(url_for("console.callbacks"))
    log.info("callback request %s done by user %s", request_id, who.user_id)
    flash(_("Atzīmēts kā izpildīts."))
    return redirect(url_for("console.callbacks"))


# Chart -------------------------------------------------------------------------------------


def _chart_counts() -> list[listing.DayCounts]:
    who = viewer()
    zone = _zone()
    last = _now().astimezone(zone).date()
    first = last - timedelta(days=CHART_DAYS - 1)
    with _db() as session:
        where = listing.CallFilter(own=who.own_staff(session), nothing=who.sees_nothing())
        return listing.daily_counts(session, where, first=first, last=last, zone=zone)


@bp.get("/chart")
@allow("staff", "supervisor")
def chart_page() -> ResponseReturnValue:
    return render_template("chart.html", days=_chart_counts())


@bp.get("/chart.svg")
@allow("staff", "supervisor")
def chart_svg() -> ResponseReturnValue:
    labels = (_("Atbildēti"), _("Neatbildēti"), _("Atbildēja aizvietotājs"))
    svg = chart.calls_per_day(_chart_counts(), labels, title=_("Zvani dienā, 30 dienas"))
    response = Response(svg, mimetype="image/svg+xml")
    # pygal styles its drawing with a <style> element inside the SVG; the SVG has no script.
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"
    )
    return response


# Directory (supervisor) --------------------------------------------------------------------


def _directory_page(error: str | None = None) -> Response:
    with _db() as session:
        lines = [
            {
                "number": line.number,
                "target": directory.describe_target(session, line),
                "hours": line.hours,
                "overflow": line.overflow_group_id,
            }
            for line in directory.list_lines(session)
        ]
        groups = directory.list_groups(session)
        group_keys: dict[Any, str] = {group.id: group.key for group in groups}
        for line_row in lines:
            line_row["overflow"] = group_keys.get(line_row["overflow"]) or ""
        body = render_template(
            "directory.html",
            staff=directory.list_staff(session),
            groups=[(g, [m.staff.key for m in g.members]) for g in groups],
            lines=lines,
            changes=directory.list_hours_changes(session, since=_now().astimezone(_zone()).date()),
            strategies=directory.STRATEGIES,
            error=error,
        )
    return Response(body, status=422 if error else 200)


@bp.get("/directory")
@allow("supervisor")
def directory_page() -> ResponseReturnValue:
    return _directory_page()


def _directory_change(action: Any) -> ResponseReturnValue:
    try:
        with _db() as session:
            action(session)
    except directory.DirectoryError as exc:
        return _directory_page(directory_refusal(exc))
    log.info("directory changed by user %s", viewer().user_id)
    flash(_("Saglabāts."))
    return redirect(url_for("console.directory_page"))


@bp.post("/directory/staff")
@allow("supervisor")
def staff_add() -> ResponseReturnValue:
    form = {k: request.form.get(k, "").strip() for k in ("key", "name", "phone", "position")}
    return _directory_change(
        lambda session: directory.add_staff(
            session,
            form["key"],
            name=form["name"],
            phone=form["phone"],
            position=form["position"] or None,
        )
    )


@bp.post("/directory/staff/<key>/deactivate")
@allow("supervisor")
def staff_deactivate(key: str) -> ResponseReturnValue:
    return _directory_change(lambda session: directory.set_staff_active(session, key, False))


@bp.post("/directory/groups")
@allow("supervisor")
def group_add() -> ResponseReturnValue:
    key, name = request.form.get("key", "").strip(), request.form.get("name", "").strip()
    members = [m.strip() for m in request.form.get("members", "").split(",") if m.strip()]
    strategy = request.form.get("strategy", "sequential")
    return _directory_change(
        lambda session: directory.add_group(
            session, key, name=name, members=members, strategy=strategy
        )
    )


@bp.post("/directory/lines")
@allow("supervisor")
def line_add() -> ResponseReturnValue:
    form = {k: request.form.get(k, "").strip() for k in ("number", "target", "hours", "overflow")}
    return _directory_change(
        lambda session: directory.add_line(
            session,
            form["number"],
            target=form["target"],
            hours=form["hours"] or None,
            overflow=form["overflow"] or None,
        )
    )


@bp.post("/directory/hours")
@allow("supervisor")
def hours_set() -> ResponseReturnValue:
    raw_day = request.form.get("day", "").strip()
    interval = request.form.get("hours", "").strip() or None
    message = request.form.get("message", "").strip()[:1000] or None
    try:
        day = date.fromisoformat(raw_day)
    except ValueError:
        return _directory_page(_("Datums jāraksta kā 2026-03-02."))
    return _directory_change(
        lambda session: directory.set_hours_change(session, day, hours=interval, message=message)
    )


@bp.post("/directory/hours/<day>/remove")
@allow("supervisor")
def hours_remove(day: str) -> ResponseReturnValue:
    try:
        parsed = date.fromisoformat(day)
    except ValueError:
        abort(404)
    return _directory_change(lambda session: directory.remove_hours_change(session, parsed))


# Users (admin) -----------------------------------------------------------------------------


def _users_page(error: str | None = None) -> Response:
    with _db() as session:
        body = render_template(
            "users.html",
            users=accounts.list_users(session),
            roles=ROLES,
            staff=directory.list_staff(session),
            error=error,
        )
    return Response(body, status=422 if error else 200)


@bp.get("/users")
@allow("admin")
def users() -> ResponseReturnValue:
    return _users_page()


@bp.post("/users")
@allow("admin")
def user_add() -> ResponseReturnValue:
    form = {k: request.form.get(k, "").strip() for k in ("username", "role", "staff")}
    try:
        with _db() as session:
            added = accounts.add_user(
                session,
                form["username"],
                role=form["role"],
                password=request.form.get("password", ""),
                staff_key=form["staff"] or None,
                now=_now(),
            )
            added_id = added.id
    except accounts.AccountError as exc:
        return _users_page(str(exc))
    log.info("user %s added by user %s", added_id, viewer().user_id)
    flash(_("Lietotājs pievienots."))
    return redirect(url_for("console.users"))


@bp.post("/users/<username>/deactivate")
@allow("admin")
def user_deactivate(username: str) -> ResponseReturnValue:
    try:
        with _db() as session:
            accounts.deactivate_user(session, username, now=_now())
    except accounts.AccountError as exc:
        return _users_page(str(exc))
    flash(_("Lietotājs atslēgts."))
    return redirect(url_for("console.users"))
