"""The voice webhooks Twilio calls while a caller is on the line.

Every route here answers TwiML, even when something inside fails: the caller hears an apology
and the fallback (after the notice), never "an application error has occurred". Each view
parses the form, calls one domain function in one short transaction, and renders.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from datetime import datetime

from flask import Blueprint
from flask.blueprints import BlueprintSetupState
from sqlalchemy.orm import Session
from twilio.twiml.voice_response import VoiceResponse
from werkzeug.exceptions import HTTPException

from callcenter import logs, phones
from callcenter.calls import callbacks, outcomes, speech, survey
from callcenter.calls import intake as calls
from callcenter.calls.fastpath import NewCall, VoicePath
from callcenter.db import deadline, transaction
from callcenter.runtime import Runtime
from callcenter.settings import Settings
from webhooks import paths, twiml
from webhooks.forms import Incoming
from webhooks.front import Reply, route
from webhooks.security import MissingField, require, twilio_webhook

log = logging.getLogger(__name__)

bp = Blueprint("voice", __name__)

# Which failures' tracebacks were written lately (one per kind per outage, for every webhook).
FAILURES = logs.OncePerOutage()


# Where the runtime keeps its fast path for /twilio/voice (made as the app is built).
_VOICE_PATH = "webhooks.voice_path"


@bp.record_once
def _keep_voice_path(state: BlueprintSetupState) -> None:
    runtime = Runtime.of(state.app)

    def render(settings: Settings, answer: calls.Answer) -> bytes:
        return str(_render(settings, answer, first_contact=True)).encode()

    runtime.kept[_VOICE_PATH] = VoicePath(
        lambda: runtime.settings, runtime.directory, runtime.voice_engine, render
    )


def _voice_path(runtime: Runtime) -> VoicePath:
    path: VoicePath = runtime.kept[_VOICE_PATH]
    return path


def _xml(response: VoiceResponse | bytes) -> Reply:
    body = response if isinstance(response, bytes) else str(response).encode()
    return Reply(200, body, "text/xml")


View = Callable[[Runtime, Incoming], VoiceResponse | bytes]
OnError = Callable[[Runtime, Incoming], VoiceResponse]


def _caller_fallback(runtime: Runtime, incoming: Incoming) -> VoiceResponse:
    return twiml.fallback(runtime.settings, apology=True)


def _twiml_route(on_error: OnError) -> Callable[[View], Callable[[Runtime, Incoming], Reply]]:
    """Render a view's TwiML; on any failure, answer `on_error()` (TwiML) instead of a 500."""

    def decorate(view: View) -> Callable[[Runtime, Incoming], Reply]:
        @functools.wraps(view)
        def wrapper(runtime: Runtime, incoming: Incoming) -> Reply:
            try:
                # A caller is on the line: no database wait may outlast the bound.
                with deadline(runtime.settings.voice_database_timeout_ms / 1000):
                    return _xml(view(runtime, incoming))
            except (MissingField, outcomes.BadEvent) as exc:
                return Reply.plain(400, str(exc))
            except HTTPException:
                raise  # 403 for a bad signature, and the like: answers, not failures
            except Exception as exc:
                # One line per call with the cause; the traceback once per outage.
                log.error(
                    "voice route %s failed, answered with the fallback: %s",
                    incoming.path,
                    logs.cause(exc),
                    exc_info=FAILURES.first(exc),
                )
                return _xml(on_error(runtime, incoming))

        return wrapper

    return decorate


# On the caller's leg: an apology, the notice and the fallback number.
voice_route = _twiml_route(_caller_fallback)


def _whisper_fallback(runtime: Runtime, incoming: Incoming) -> VoiceResponse:
    # On the callee's leg no <Dial> is allowed: ask to accept, naming no one.
    return twiml.whisper_prompt(runtime.settings, speech.WHISPER_UNKNOWN)


@route(bp, paths.VOICE)
@voice_route
@twilio_webhook
def voice(runtime: Runtime, incoming: Incoming) -> bytes:
    """A call arrives: the notice, then the dial; or the hours and a callback offer."""
    form = require(incoming.form, "CallSid", "From", "To")
    path, now = _voice_path(runtime), runtime.now()
    # Kept connections, not an ORM session: this is the path every call takes. Calls arriving
    # together are committed together (db.GroupCommit).
    started = runtime.call_writes.run_together(
        path.starts, NewCall(form["CallSid"], form["From"], form["To"], now), key=form["CallSid"]
    )
    if log.isEnabledFor(logging.DEBUG):
        # DEBUG: the call row holds all of this; a line per call costs a write per call.
        log.debug(
            "call %s from %s: %s",
            form["CallSid"],
            phones.mask(form["From"]),
            started.decision.answer.kind,
        )
    return started.body


def _render(settings: Settings, answer: calls.Answer, *, first_contact: bool) -> VoiceResponse:
    if answer.kind == "connect":
        return twiml.connect(
            settings,
            answer.legs,
            with_notice=first_contact,
            announcements=answer.announcements if first_contact else (),
            record=answer.record,
        )
    if answer.kind == "unknown-line":
        return twiml.fallback(settings, apology=False)
    if answer.kind == "survey":
        return twiml.survey(settings)
    return twiml.callback_offer(settings, answer.message, caller_withheld=answer.caller_withheld)


@route(bp, paths.FALLBACK)
@voice_route
@twilio_webhook
def fallback(runtime: Runtime, incoming: Incoming) -> VoiceResponse:
    """Twilio's Fallback URL: the notice and the fallback number, touching no database."""
    return twiml.fallback(runtime.settings, apology=True)


@route(bp, paths.DIAL_COMPLETE)
@voice_route
@twilio_webhook
def dial_complete(runtime: Runtime, incoming: Incoming) -> VoiceResponse:
    """A dial ended: done if answered; otherwise the next target, then a callback offer."""
    form = require(incoming.form, "CallSid", "DialCallStatus")
    fields, now = incoming.form.to_dict(flat=True), runtime.now()

    def work(session: Session) -> calls.Answer | bool | None:
        call = calls.find_call(session, form["CallSid"])
        if call is None:
            return False
        # Answered, or the caller gone: None. Else the next step, or the callback offer.
        return outcomes.dial_ended(
            session, runtime.settings, call, fields, now=now, cache=runtime.directory
        )

    answer = runtime.write(work, key=form["CallSid"], voice=True)
    if answer is False:
        log.warning("dial-complete for unknown call %s", form["CallSid"])
        return twiml.callback_offer(
            runtime.settings,
            [speech.NOBODY_AVAILABLE],
            caller_withheld=phones.is_withheld(incoming.form.get("From")),
        )
    if answer is None or answer is True:  # True: never returned; for the type checker
        return twiml.hang_up()
    return _render(runtime.settings, answer, first_contact=False)


def _fallback_ended_on_error(runtime: Runtime, incoming: Incoming) -> VoiceResponse:
    # Never dial again from here: with the database gone, that would ring the fallback number
    # over and over. Answered: the conversation is over; else the apology.
    answered = (incoming.form.get("DialCallStatus") or "") in outcomes.DIAL_ANSWERED
    return twiml.fallback_ended(runtime.settings, answered=answered)


@route(bp, paths.FALLBACK_DIAL_COMPLETE)
@_twiml_route(_fallback_ended_on_error)
@twilio_webhook
def fallback_dial_complete(runtime: Runtime, incoming: Incoming) -> VoiceResponse:
    """The dial to FALLBACK_NUMBER ended: log it like any dial; done, or an apology."""
    form = require(incoming.form, "CallSid", "DialCallStatus")
    status = form["DialCallStatus"].strip().lower()
    fields, now = incoming.form.to_dict(flat=True), runtime.now()

    def work(session: Session) -> bool:
        call = calls.find_call(session, form["CallSid"])
        if call is not None:
            outcomes.fallback_dial_ended(session, runtime.settings, call, fields, now=now)
        return call is not None

    if not runtime.write(work, key=form["CallSid"]):
        # The voice route failed before writing the row: there is nothing to log it on.
        log.warning("fallback dial-complete for unknown call %s", form["CallSid"])
    if status == "canceled" or incoming.form.get("CallStatus") == "completed":
        return twiml.hang_up()
    return twiml.fallback_ended(runtime.settings, answered=status in outcomes.DIAL_ANSWERED)


@route(bp, paths.SURVEY)
@voice_route
@twilio_webhook
def survey_answer(runtime: Runtime, incoming: Incoming) -> VoiceResponse:
    """The caller's rating, 1-5: stored on the call and thanked; anything else: goodbye."""
    form = require(incoming.form, "CallSid")
    rating = survey.parse_answer(incoming.form.get("Digits"))
    if rating is None:
        return twiml.say_and_hang_up(runtime.settings, speech.GOODBYE)
    call_sid = form["CallSid"]
    stored = runtime.write(
        lambda session: survey.record_answer(session, call_sid, rating), key=call_sid
    )
    if not stored:
        log.warning("survey answer for call %s, which was not answered here", form["CallSid"])
    return twiml.say_and_hang_up(runtime.settings, speech.SURVEY_THANKS)


@route(bp, paths.WHISPER)
@_twiml_route(_whisper_fallback)
@twilio_webhook
def whisper(runtime: Runtime, incoming: Incoming) -> VoiceResponse:
    """On the substitute's leg: say whose call it is, connect only on a key press of 1.

    Twilio's request to a <Number url> carries the callee's leg as `CallSid`, the caller's
    call as `ParentCallSid`, and `To` (the substitute's number); the <Gather action> from it
    adds `Digits`. A press of 1 is stored (an `accept` event) before the leg is bridged: the
    leg counts as answered only then. If storing fails, the route's error answer asks again.
    """
    form = require(incoming.form, "CallSid")
    digits = incoming.form.get("Digits")
    settings = runtime.settings
    if digits is not None:
        if digits.strip() != "1":
            return twiml.whisper_declined(settings)
        fields, now = incoming.form.to_dict(flat=True), runtime.now()
        known = runtime.write(
            lambda session: outcomes.record_accept(session, settings, fields, now=now),
            key=fields.get("ParentCallSid") or form["CallSid"],
        )
        if not known:
            log.warning("whisper accepted on leg %s without a known parent call", form["CallSid"])
        return twiml.accept()
    parent_sid = incoming.form.get("ParentCallSid", "")
    to = incoming.form.get("To", "")
    for_name = None
    # A read only: no place in the writers' queue.
    with transaction(runtime.voice_sessions) as session:
        call = calls.find_call(session, parent_sid) if parent_sid else None
        if call is not None:
            for_name = calls.substitute_for(call, to)
    if for_name is None:
        log.warning("whisper for leg %s without a known parent call", form["CallSid"])
        for_name = speech.WHISPER_UNKNOWN
    return twiml.whisper_prompt(settings, for_name)


@route(bp, paths.CALLBACK_REQUEST)
@voice_route
@twilio_webhook
def callback_request(runtime: Runtime, incoming: Incoming) -> VoiceResponse:
    """The caller's answer to the callback offer: 1 = this number, 2 = key in another."""
    form = require(incoming.form, "CallSid")
    digits = (incoming.form.get("Digits") or "").strip().rstrip("#")
    settings = runtime.settings
    caller = incoming.form.get("From", "")
    withheld = phones.is_withheld(caller)
    if digits == "2" or (digits == "1" and withheld):
        return twiml.enter_number(settings)
    if digits == "1":
        number = caller
    elif len(digits) >= 2:
        # More than a menu key: a number keyed in. One too short to be a phone number is
        # asked for again, like any other that cannot be a number, rather than dropped.
        try:
            number = phones.normalize(digits)
        except phones.InvalidPhone:
            return twiml.enter_number(settings, prefix=speech.BAD_NUMBER)
    else:
        return twiml.say_and_hang_up(settings, speech.GOODBYE)
    now = runtime.now()

    def work(session: Session) -> datetime:
        call = calls.find_call(session, form["CallSid"])
        request_row = callbacks.request_callback(
            session, settings, phone=number, reason="requested", now=now, call=call
        )
        if call is not None:
            calls.mark_callback_requested(call)
        return request_row.due_at

    due = runtime.write(work, key=form["CallSid"], voice=True)
    log.info("callback requested on call %s for %s", form["CallSid"], phones.mask(number))
    return twiml.say_and_hang_up(
        settings, speech.CallbackConfirmed(due.astimezone(settings.timezone))
    )
