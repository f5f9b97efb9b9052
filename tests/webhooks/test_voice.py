"""The customer line as Twilio drives it: signed requests in, TwiML parsed as XML out."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from callcenter.calls.models import Call, CallbackRequest
from callcenter.directory import service as directory
from callcenter.directory.models import Absence
from callcenter.runtime import Runtime
from tests.conftest import ACCOUNT_SID, PUBLIC_BASE_URL, RIGA, TwilioPost, sign

LINE = "+37167000001"
DIRECT = "+37167000002"
CALLER = "+37129111111"
# Monday 23 November 2026, 10:00 in Riga: inside the company's hours.
MONDAY_MORNING = datetime(2026, 11, 23, 10, 0, tzinfo=RIGA)


@pytest.fixture
def staffed(sessions: sessionmaker[Session]) -> None:
    """Four people, a sequential and a simultaneous group, and two lines."""
    with sessions.begin() as session:
        directory.add_staff(session, "jberzins", name="Jānis Bērziņš", phone="20000001")
        directory.add_staff(session, "lozola", name="Līga <Ozola> & Co", phone="20000002")
        directory.add_staff(session, "akalnins", name="Andris Kalniņš", phone="20000003")
        directory.add_staff(session, "ipetersone", name="Ilze Pētersone", phone="20000004")
        directory.add_group(
            session,
            "abonenti",
            name="Abonenti",
            members=["lozola", "akalnins"],
            strategy="sequential",
        )
        directory.add_group(
            session,
            "visi",
            name="Visi",
            members=["akalnins", "ipetersone"],
            strategy="simultaneous",
        )
        directory.add_line(session, LINE, target="group:abonenti")
        directory.add_line(session, DIRECT, target="staff:jberzins", overflow="visi")


@pytest.fixture
def at(runtime: Runtime) -> Callable[[datetime], None]:
    """Put the service's clock at an instant."""

    def set_clock(moment: datetime) -> None:
        runtime.clock = lambda: moment.astimezone(UTC)

    set_clock(MONDAY_MORNING)
    return set_clock


def absence(
    sessions: sessionmaker[Session], who: str, sub: str, start: datetime, end: datetime
) -> None:
    with sessions.begin() as session:
        directory.add_absence(
            session, who, starts_at=start, ends_at=end, substitute_key=sub, allow_cycle=True
        )


def cycle_absence(
    sessions: sessionmaker[Session], who: str, sub: str, start: datetime, end: datetime
) -> None:
    """Write an absence that closes a cycle: add_absence refuses that now, but rows from
    before that rule may still hold one, and routing must cut it."""
    with sessions.begin() as session:
        staff, substitute = directory.get_staff(session, who), directory.get_staff(session, sub)
        session.add(
            Absence(staff_id=staff.id, substitute_id=substitute.id, starts_at=start, ends_at=end)
        )


def unreachable_database(runtime: Runtime) -> None:
    """Point the service at a database server that refuses connections (port 1)."""
    from callcenter.db import make_engine, make_sessionmaker

    for name in ("engine", "voice_engine"):
        setattr(runtime, name, make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none"))
    runtime.sessions = make_sessionmaker(runtime.engine)
    runtime.voice_sessions = make_sessionmaker(runtime.voice_engine)
    runtime.__dict__.pop("pinned", None)


def voice_form(call_sid: str = "CA" + "1" * 32, to: str = DIRECT, caller: str = CALLER) -> dict:
    return {
        "CallSid": call_sid,
        "AccountSid": ACCOUNT_SID,
        "From": caller,
        "To": to,
        "CallStatus": "ringing",
        "Direction": "inbound",
        "ApiVersion": "2010-04-01",
    }


def twiml(response) -> ET.Element:  # type: ignore[no-untyped-def]
    assert response.status_code == 200, response.data
    assert response.mimetype == "text/xml"
    root = ET.fromstring(response.data)
    assert root.tag == "Response"
    return root


def dialled(root: ET.Element) -> list[str]:
    return [n.text or "" for n in root.iter("Number")]


def assert_notice_before_dial(root: ET.Element) -> None:
    """The recording notice is spoken, in Latvian, before any <Dial>."""
    verbs = list(root)
    dial_at = next(i for i, v in enumerate(verbs) if v.tag == "Dial")
    notices = [v for v in verbs[:dial_at] if v.tag == "Say" and v.get("language") == "lv-LV"]
    assert any("ierakstīta" in (say.text or "") for say in notices)


# Within hours --------------------------------------------------------------------------------


def test_notice_comes_first_then_a_recorded_dial_with_absolute_callbacks(
    staffed: None, at: Callable, twilio_post: TwilioPost
) -> None:
    root = twiml(twilio_post("/twilio/voice", voice_form()))
    assert [v.tag for v in root] == ["Say", "Dial"]
    assert_notice_before_dial(root)
    dial = root.find("Dial")
    assert dial is not None
    assert dial.get("record") == "record-from-answer-dual"
    assert dial.get("recordingStatusCallback") == PUBLIC_BASE_URL + "/twilio/recording-status"
    assert dial.get("recordingStatusCallbackEvent") == "completed absent"
    assert dial.get("action") == PUBLIC_BASE_URL + "/twilio/voice/dial-complete"
    for element in root.iter():
        for name, value in element.attrib.items():
            if value.startswith("http"):
                assert value.startswith(PUBLIC_BASE_URL) and "?" not in value, (name, value)
    assert dialled(root) == ["+37120000001"]
    # The person the line is for answers directly: no whisper on their leg.
    assert root.find("Dial/Number").get("url") is None  # type: ignore[union-attr]


def test_configured_audio_notice_is_played_before_the_dial(
    staffed: None, at: Callable, runtime: Runtime, twilio_post: TwilioPost
) -> None:
    runtime.settings = runtime.settings.with_overrides(
        notice_audio_url="https://cdn.example.test/notice-lv.mp3"
    )
    root = twiml(twilio_post("/twilio/voice", voice_form()))
    assert [v.tag for v in root] == ["Play", "Dial"]
    assert root.find("Play").text == "https://cdn.example.test/notice-lv.mp3"  # type: ignore[union-attr]


def test_retried_webhook_answers_the_same_and_writes_one_row(
    staffed: None, at: Callable, twilio_post: TwilioPost, session: Session
) -> None:
    first = twiml(twilio_post("/twilio/voice", voice_form()))
    second = twiml(twilio_post("/twilio/voice", voice_form()))
    assert ET.tostring(first) == ET.tostring(second)
    assert session.scalar(select(func.count()).select_from(Call)) == 1
    call = session.scalars(select(Call)).one()
    assert call.notice == "say:lv-LV"
    assert call.intended == "staff:jberzins"


def test_absent_person_is_replaced_by_substitute_who_hears_a_whisper(
    staffed: None, at: Callable, sessions: sessionmaker, twilio_post: TwilioPost
) -> None:
    absence(
        sessions,
        "jberzins",
        "lozola",
        MONDAY_MORNING - timedelta(days=1),
        MONDAY_MORNING + timedelta(days=7),
    )
    root = twiml(twilio_post("/twilio/voice", voice_form()))
    assert_notice_before_dial(root)
    number = root.find("Dial/Number")
    assert number is not None and number.text == "+37120000002"
    assert number.get("url") == PUBLIC_BASE_URL + "/twilio/voice/whisper"

    leg = {
        "CallSid": "CA" + "9" * 32,
        "ParentCallSid": "CA" + "1" * 32,
        "AccountSid": ACCOUNT_SID,
        "To": "+37120000002",
        "From": CALLER,
    }
    whisper = twiml(twilio_post("/twilio/voice/whisper", leg))
    gather = whisper.find("Gather")
    assert gather is not None and gather.get("numDigits") == "1"
    said = gather.find("Say")
    assert said is not None and "Jānis Bērziņš" in (said.text or "")
    # Nothing pressed (voicemail): the leg hangs up rather than bridging.
    assert [v.tag for v in whisper] == ["Gather", "Hangup"]
    assert [
        v.tag for v in twiml(twilio_post("/twilio/voice/whisper", {**leg, "Digits": "1"}))
    ] == []
    declined = twiml(twilio_post("/twilio/voice/whisper", {**leg, "Digits": "5"}))
    assert declined.find("Hangup") is not None


def test_whisper_escapes_names_from_data(
    staffed: None, at: Callable, sessions: sessionmaker, twilio_post: TwilioPost
) -> None:
    with sessions.begin() as session:
        directory.add_line(session, "+37167000009", target="staff:lozola", hours="always")
    absence(
        sessions,
        "lozola",
        "jberzins",
        MONDAY_MORNING - timedelta(hours=1),
        MONDAY_MORNING + timedelta(hours=1),
    )
    twiml(twilio_post("/twilio/voice", voice_form(to="+37167000009")))
    leg = {
        "CallSid": "CA" + "8" * 32,
        "ParentCallSid": "CA" + "1" * 32,
        "To": "+37120000001",
        "From": CALLER,
    }
    response = twilio_post("/twilio/voice/whisper", leg)
    assert b"&lt;Ozola&gt; &amp; Co" in response.data
    assert "Līga <Ozola> & Co" in (twiml(response).find("Gather/Say").text or "")  # type: ignore[union-attr]


def test_substitute_chain_is_followed(
    staffed: None, at: Callable, sessions: sessionmaker, twilio_post: TwilioPost, session: Session
) -> None:
    week = (MONDAY_MORNING - timedelta(days=1), MONDAY_MORNING + timedelta(days=7))
    absence(sessions, "jberzins", "lozola", *week)
    absence(sessions, "lozola", "akalnins", *week)
    root = twiml(twilio_post("/twilio/voice", voice_form()))
    assert dialled(root) == ["+37120000003"]
    call = session.scalars(select(Call)).one()
    assert call.plan[0][0]["chain"] == ["jberzins", "lozola", "akalnins"]
    assert call.plan[0][0]["for_key"] == "jberzins"
    assert "jberzins is away" in (call.routing_note or "")


def test_substitute_cycle_falls_back_to_the_overflow_group(
    staffed: None, at: Callable, sessions: sessionmaker, twilio_post: TwilioPost, session: Session
) -> None:
    week = (MONDAY_MORNING - timedelta(days=1), MONDAY_MORNING + timedelta(days=7))
    absence(sessions, "jberzins", "lozola", *week)
    cycle_absence(sessions, "lozola", "jberzins", *week)
    root = twiml(twilio_post("/twilio/voice", voice_form()))
    assert_notice_before_dial(root)
    # The overflow group "visi" rings both at once.
    assert dialled(root) == ["+37120000003", "+37120000004"]
    assert "cycle" in (session.scalars(select(Call)).one().routing_note or "")


def test_everybody_away_offers_a_callback_never_silence(
    staffed: None, at: Callable, sessions: sessionmaker, twilio_post: TwilioPost
) -> None:
    week = (MONDAY_MORNING - timedelta(days=1), MONDAY_MORNING + timedelta(days=7))
    absence(sessions, "lozola", "jberzins", *week)
    cycle_absence(sessions, "jberzins", "lozola", *week)
    absence(sessions, "akalnins", "lozola", *week)
    root = twiml(twilio_post("/twilio/voice", voice_form(to=LINE)))
    assert root.find("Dial") is None
    gather = root.find("Gather")
    assert gather is not None
    assert gather.get("action") == PUBLIC_BASE_URL + "/twilio/voice/callback-request"


@pytest.mark.parametrize(
    ("offset", "substitute_rings"),
    [(-1, False), (0, True), (1, True)],
    ids=["second-before-start", "exact-start", "second-after-start"],
)
def test_absence_start_boundary(
    staffed: None,
    at: Callable,
    sessions: sessionmaker,
    twilio_post: TwilioPost,
    offset: int,
    substitute_rings: bool,
) -> None:
    start = MONDAY_MORNING
    absence(sessions, "jberzins", "lozola", start, start + timedelta(hours=2))
    at(start + timedelta(seconds=offset))
    root = twiml(twilio_post("/twilio/voice", voice_form()))
    assert dialled(root) == (["+37120000002"] if substitute_rings else ["+37120000001"])


@pytest.mark.parametrize(
    ("offset", "substitute_rings"),
    [(-1, True), (0, False), (1, False)],
    ids=["second-before-end", "exact-end", "second-after-end"],
)
def test_absence_end_boundary(
    staffed: None,
    at: Callable,
    sessions: sessionmaker,
    twilio_post: TwilioPost,
    offset: int,
    substitute_rings: bool,
) -> None:
    end = MONDAY_MORNING
    absence(sessions, "jberzins", "lozola", end - timedelta(hours=2), end)
    at(end + timedelta(seconds=offset))
    root = twiml(twilio_post("/twilio/voice", voice_form()))
    assert dialled(root) == (["+37120000002"] if substitute_rings else ["+37120000001"])


@pytest.mark.parametrize(
    "local_start",
    [datetime(2026, 3, 29, 2, 30), datetime(2026, 10, 25, 3, 30)],
    ids=["spring-forward", "fall-back"],
)
def test_absence_entered_in_local_time_on_dst_days(
    staffed: None,
    at: Callable,
    sessions: sessionmaker,
    twilio_post: TwilioPost,
    runtime: Runtime,
    local_start: datetime,
) -> None:
    # An always-open line, so the DST Sunday's hours do not get in the way.
    with sessions.begin() as session:
        directory.add_line(session, "+37167000008", target="staff:jberzins", hours="always")
    start = local_start.replace(tzinfo=RIGA)
    absence(sessions, "jberzins", "lozola", start, start + timedelta(hours=3))
    at(start + timedelta(minutes=1))
    root = twiml(twilio_post("/twilio/voice", voice_form(to="+37167000008")))
    assert dialled(root) == ["+37120000002"]
    at(start - timedelta(minutes=1))
    root = twiml(twilio_post("/twilio/voice", voice_form("CA" + "2" * 32, to="+37167000008")))
    assert dialled(root) == ["+37120000001"]


def test_sequential_group_rings_members_one_after_another_then_offers_callback(
    staffed: None, at: Callable, twilio_post: TwilioPost, session: Session
) -> None:
    root = twiml(twilio_post("/twilio/voice", voice_form(to=LINE)))
    assert_notice_before_dial(root)
    assert dialled(root) == ["+37120000002"]
    done = {**voice_form(to=LINE), "DialCallStatus": "no-answer", "CallStatus": "in-progress"}
    second = twiml(twilio_post("/twilio/voice/dial-complete", done))
    # The notice was heard already; the next member is dialled straight away, still recorded.
    assert [v.tag for v in second] == ["Dial"]
    assert dialled(second) == ["+37120000003"]
    assert second.find("Dial").get("record") == "record-from-answer-dual"  # type: ignore[union-attr]
    third = twiml(twilio_post("/twilio/voice/dial-complete", {**done, "DialCallStatus": "busy"}))
    assert third.find("Dial") is None
    assert third.find("Gather") is not None
    # Pressing 1 leaves a callback request for the caller's own number, due by the calendar.
    form = {**voice_form(to=LINE), "Digits": "1"}
    confirmed = twiml(twilio_post("/twilio/voice/callback-request", form))
    assert "atzvanīsim" in (confirmed.find("Say").text or "")  # type: ignore[union-attr]
    request = session.scalars(select(CallbackRequest)).one()
    assert request.phone == CALLER
    # Two working days after Monday 23 November: Wednesday 25 November at closing time.
    assert request.due_at == datetime(2026, 11, 25, 17, 0, tzinfo=RIGA)
    assert session.scalars(select(Call)).one().outcome == "callback-requested"


def test_dial_answered_hangs_up_after_the_conversation(
    staffed: None, at: Callable, twilio_post: TwilioPost
) -> None:
    twiml(twilio_post("/twilio/voice", voice_form(to=LINE)))
    done = {**voice_form(to=LINE), "DialCallStatus": "completed", "CallStatus": "in-progress"}
    assert [v.tag for v in twiml(twilio_post("/twilio/voice/dial-complete", done))] == ["Hangup"]


def test_substitute_who_declines_in_the_whisper_is_no_answer_and_the_group_goes_on(
    staffed: None, at: Callable, sessions: sessionmaker, twilio_post: TwilioPost, session: Session
) -> None:
    absence(
        sessions,
        "lozola",
        "ipetersone",
        MONDAY_MORNING - timedelta(days=1),
        MONDAY_MORNING + timedelta(days=7),
    )
    root = twiml(twilio_post("/twilio/voice", voice_form(to=LINE)))
    assert dialled(root) == ["+37120000004"]
    assert root.find("Dial/Number").get("url") is not None  # type: ignore[union-attr]
    # The substitute's phone picked up (so Twilio says "completed") but the whisper was
    # declined, or a voicemail pressed nothing: the caller was never put through.
    declined = {
        **voice_form(to=LINE),
        "DialCallStatus": "completed",
        "DialBridged": "false",
        "DialCallSid": "CA" + "d" * 32,
        "CallStatus": "in-progress",
    }
    second = twiml(twilio_post("/twilio/voice/dial-complete", declined))
    assert dialled(second) == ["+37120000003"]
    session.expire_all()
    assert session.scalars(select(Call)).one().outcome == "in-progress"
    bridged = {**declined, "DialBridged": "true", "DialCallSid": "CA" + "e" * 32}
    assert [v.tag for v in twiml(twilio_post("/twilio/voice/dial-complete", bridged))] == ["Hangup"]
    session.expire_all()
    assert session.scalars(select(Call)).one().outcome == "answered"


def test_dial_complete_never_dials_a_call_whose_notice_was_not_served(
    staffed: None, at: Callable, twilio_post: TwilioPost, session: Session
) -> None:
    twiml(twilio_post("/twilio/voice", voice_form(to=LINE)))
    # A row that does not say the notice was served (written by something else, or damaged).
    call = session.scalars(select(Call)).one()
    call.notice = None
    session.commit()
    done = {**voice_form(to=LINE), "DialCallStatus": "no-answer", "CallStatus": "in-progress"}
    root = twiml(twilio_post("/twilio/voice/dial-complete", done))
    assert root.find("Dial") is None
    assert root.find("Gather") is not None


def test_callback_to_another_number_keyed_in(
    staffed: None, at: Callable, twilio_post: TwilioPost, session: Session
) -> None:
    form = {**voice_form(to=LINE, caller="anonymous")}
    offer = twiml(twilio_post("/twilio/voice/callback-request", {**form, "Digits": "1"}))
    # A withheld number cannot be called back: the caller is asked for one.
    assert offer.find("Gather") is not None
    bad = twiml(twilio_post("/twilio/voice/callback-request", {**form, "Digits": "12345678#"}))
    assert bad.find("Gather") is not None
    # Too short to be a number: asked again, not dropped with a goodbye.
    short = twiml(twilio_post("/twilio/voice/callback-request", {**form, "Digits": "1234567#"}))
    assert short.find("Gather") is not None
    assert "nevarējām saprast" in " ".join(say.text or "" for say in short.iter("Say"))
    assert session.scalar(select(func.count()).select_from(CallbackRequest)) == 0
    twiml(twilio_post("/twilio/voice/callback-request", {**form, "Digits": "29222222#"}))
    assert session.scalars(select(CallbackRequest)).one().phone == "+37129222222"


# Outside hours ------------------------------------------------------------------------------


def test_after_hours_caller_hears_the_hours_and_a_callback_offer(
    staffed: None, at: Callable, twilio_post: TwilioPost, session: Session
) -> None:
    at(datetime(2026, 11, 23, 18, 0, tzinfo=RIGA))
    root = twiml(twilio_post("/twilio/voice", voice_form(to=LINE)))
    assert root.find("Dial") is None
    text = " ".join(s.text or "" for s in root.iter("Say"))
    assert "nestrādā" in text
    assert "otrdien, 24. novembrī, no 8.00 līdz 17.00" in text
    assert root.find("Gather") is not None
    call = session.scalars(select(Call)).one()
    assert call.after_hours and call.outcome == "after-hours" and call.notice is None
    # The row still says whom the call was for, as a call within hours does.
    assert call.intended == "group:abonenti"


def test_holiday_is_closed_and_named(staffed: None, at: Callable, twilio_post: TwilioPost) -> None:
    at(datetime(2026, 11, 18, 10, 0, tzinfo=RIGA))
    root = twiml(twilio_post("/twilio/voice", voice_form(to=LINE)))
    assert root.find("Dial") is None
    text = " ".join(s.text or "" for s in root.iter("Say"))
    assert "svētku diena" in text and "ceturtdien, 19. novembrī" in text


@pytest.mark.parametrize(
    ("local", "open_"),
    [
        (datetime(2026, 11, 17, 15, 59, 59), True),
        (datetime(2026, 11, 17, 16, 0, 0), False),
        (datetime(2026, 12, 23, 15, 59, 59), True),
        (datetime(2026, 12, 23, 16, 0, 0), False),
        (datetime(2026, 12, 24, 10, 0, 0), False),
    ],
)
def test_pre_holiday_day_ends_an_hour_early(
    staffed: None, at: Callable, twilio_post: TwilioPost, local: datetime, open_: bool
) -> None:
    at(local.replace(tzinfo=RIGA))
    root = twiml(twilio_post("/twilio/voice", voice_form(to=LINE)))
    assert (root.find("Dial") is not None) is open_


def test_one_off_change_is_announced_and_applied(
    staffed: None, at: Callable, sessions: sessionmaker, twilio_post: TwilioPost
) -> None:
    from datetime import date

    with sessions.begin() as session:
        directory.set_hours_change(
            session,
            date(2026, 11, 25),
            hours="10:00-12:00",
            message="Trešdien strādājam saīsināti inventarizācijas dēļ.",
        )
    root = twiml(twilio_post("/twilio/voice", voice_form(to=LINE)))
    says = [s.text or "" for s in root.findall("Say")]
    assert_notice_before_dial(root)
    assert any("inventarizācijas" in s for s in says[1:])
    at(datetime(2026, 11, 25, 12, 0, tzinfo=RIGA))
    closed = twiml(twilio_post("/twilio/voice", voice_form("CA" + "3" * 32, to=LINE)))
    assert closed.find("Dial") is None
    assert "inventarizācijas" in " ".join(s.text or "" for s in closed.iter("Say"))


# Bad requests and failures ------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/twilio/voice",
        "/twilio/voice/fallback",
        "/twilio/voice/dial-complete",
        "/twilio/voice/whisper",
        "/twilio/voice/callback-request",
    ],
)
def test_unsigned_or_wrongly_signed_requests_are_refused(
    staffed: None,
    client,
    twilio_post: TwilioPost,
    path: str,  # type: ignore[no-untyped-def]
) -> None:
    form = voice_form()
    assert client.post(path, data=form).status_code == 403
    assert twilio_post(path, form, signature="bm90IGEgc2lnbmF0dXJl").status_code == 403
    # Signed for another URL (http instead of https, as a careless proxy setup would do).
    wrong = sign("http://calls.example.test" + path, form)
    assert twilio_post(path, form, signature=wrong).status_code == 403
    # Signed with another account's token.
    assert (
        twilio_post(path, form, signature=sign(PUBLIC_BASE_URL + path, form, "x")).status_code
        == 403
    )


def test_tampered_form_fails_the_signature(staffed: None, client) -> None:  # type: ignore[no-untyped-def]
    form = voice_form()
    signature = sign(PUBLIC_BASE_URL + "/twilio/voice", form)
    tampered = {**form, "To": LINE}
    response = client.post(
        "/twilio/voice", data=tampered, headers={"X-Twilio-Signature": signature}
    )
    assert response.status_code == 403


@pytest.mark.parametrize("missing", ["CallSid", "From", "To"])
def test_signed_request_missing_a_field_is_400(
    staffed: None, twilio_post: TwilioPost, missing: str, session: Session
) -> None:
    form = {k: v for k, v in voice_form().items() if k != missing}
    response = twilio_post("/twilio/voice", form)
    assert response.status_code == 400
    assert missing in response.get_data(as_text=True)
    assert session.scalar(select(func.count()).select_from(Call)) == 0


@pytest.mark.parametrize("path", ["/twilio/voice", "/twilio/voice/dial-complete"])
def test_signed_request_with_a_field_no_twilio_value_is_that_long_is_400(
    staffed: None, twilio_post: TwilioPost, session: Session, path: str
) -> None:
    form = {**voice_form("CA" + "1" * 5000), "DialCallStatus": "no-answer"}
    response = twilio_post(path, form)
    assert response.status_code == 400
    assert "CallSid" in response.get_data(as_text=True)
    assert session.scalar(select(func.count()).select_from(Call)) == 0


def test_wrong_method_is_405(client) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/twilio/voice").status_code == 405
    assert client.put("/twilio/voice/dial-complete").status_code == 405


def test_database_failure_still_answers_with_notice_and_fallback(
    staffed: None, at: Callable, runtime: Runtime, twilio_post: TwilioPost, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    unreachable_database(runtime)
    root = twiml(twilio_post("/twilio/voice", voice_form()))
    assert [v.tag for v in root][:3] == ["Say", "Say", "Dial"]
    assert "traucējumi" in (root[0].text or "")
    assert "ierakstīta" in (root[1].text or "")
    assert dialled(root) == ["+37167000000"]
    assert root.find("Dial").get("record") == "record-from-answer-dual"  # type: ignore[union-attr]


def test_fallback_route_needs_no_database(
    runtime: Runtime, twilio_post: TwilioPost, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    unreachable_database(runtime)
    root = twiml(twilio_post("/twilio/voice/fallback", voice_form()))
    assert_notice_before_dial(root)
    assert dialled(root) == ["+37167000000"]


def test_unknown_line_still_hears_notice_before_fallback(
    staffed: None, at: Callable, twilio_post: TwilioPost, session: Session
) -> None:
    root = twiml(twilio_post("/twilio/voice", voice_form(to="+37167009999")))
    assert_notice_before_dial(root)
    assert dialled(root) == ["+37167000000"]
    # The row says the notice was served, as it was.
    assert session.scalars(select(Call)).one().notice == "say:lv-LV"


def test_unknown_line_without_a_fallback_number_claims_no_notice(
    staffed: None, at: Callable, runtime: Runtime, twilio_post: TwilioPost, session: Session
) -> None:
    runtime.settings = runtime.settings.with_overrides(fallback_number=None)
    root = twiml(twilio_post("/twilio/voice", voice_form(to="+37167009999")))
    # Nobody to connect: an apology and a hang-up, so no notice is needed, and none is logged.
    assert root.find("Dial") is None and root.find("Hangup") is not None
    assert session.scalars(select(Call)).one().notice is None


def test_directory_changes_reach_the_next_call_in_a_running_process(
    staffed: None, at: Callable, sessions: sessionmaker, runtime: Runtime, twilio_post: TwilioPost
) -> None:
    assert dialled(twiml(twilio_post("/twilio/voice", voice_form("CA" + "4" * 32)))) == [
        "+37120000001"
    ]
    loads = runtime.directory.loads
    # Unchanged directory: the next call is answered from the snapshot.
    twiml(twilio_post("/twilio/voice", voice_form("CA" + "5" * 32)))
    assert runtime.directory.loads == loads
    # Another process (the CLI) records an absence: the very next call sees it.
    absence(
        sessions,
        "jberzins",
        "lozola",
        MONDAY_MORNING - timedelta(hours=1),
        MONDAY_MORNING + timedelta(hours=1),
    )
    assert dialled(twiml(twilio_post("/twilio/voice", voice_form("CA" + "6" * 32)))) == [
        "+37120000002"
    ]
    with sessions.begin() as session:
        cancelled = directory.list_absences(session)[0]
        directory.cancel_absence(session, cancelled.id, now=MONDAY_MORNING)
    assert dialled(twiml(twilio_post("/twilio/voice", voice_form("CA" + "7" * 32)))) == [
        "+37120000001"
    ]


def test_a_failure_while_checking_the_signature_still_answers_twiml(
    runtime: Runtime, twilio_post: TwilioPost
) -> None:
    # A token lost after start (cannot happen through settings, but code can fail anywhere).
    runtime.settings = runtime.settings.with_overrides(twilio_auth_token=None)
    root = twiml(twilio_post("/twilio/voice", voice_form()))
    assert_notice_before_dial(root)
    assert dialled(root) == ["+37167000000"]


def test_without_the_version_row_every_call_reads_the_directory(
    staffed: None,
    at: Callable,
    engine,
    sessions: sessionmaker,
    twilio_post: TwilioPost,  # type: ignore[no-untyped-def]
) -> None:
    from sqlalchemy import text

    with engine.begin() as connection:
        connection.execute(text("DELETE FROM directory_version"))
    assert dialled(twiml(twilio_post("/twilio/voice", voice_form("CA" + "4" * 32)))) == [
        "+37120000001"
    ]
    absence(
        sessions,
        "jberzins",
        "lozola",
        MONDAY_MORNING - timedelta(hours=1),
        MONDAY_MORNING + timedelta(hours=1),
    )
    assert dialled(twiml(twilio_post("/twilio/voice", voice_form("CA" + "5" * 32)))) == [
        "+37120000002"
    ]


def test_whisper_failure_still_asks_to_accept_and_never_dials(
    runtime: Runtime, twilio_post: TwilioPost
) -> None:
    unreachable_database(runtime)
    leg = {"CallSid": "CA" + "9" * 32, "ParentCallSid": "CA" + "1" * 32, "To": "+37120000002"}
    root = twiml(twilio_post("/twilio/voice/whisper", leg))
    assert root.find(".//Dial") is None
    assert [v.tag for v in root] == ["Gather", "Hangup"]


# A running process keeps decisions in its snapshot ------------------------------------------


def test_a_running_process_follows_absences_to_the_second(
    staffed: None, at: Callable, sessions: sessionmaker, runtime: Runtime, twilio_post: TwilioPost
) -> None:
    start = MONDAY_MORNING
    end = start + timedelta(minutes=20)
    absence(sessions, "jberzins", "lozola", start, end)
    expected = [
        (start - timedelta(seconds=1), "+37120000001"),
        (start, "+37120000002"),
        (end - timedelta(seconds=1), "+37120000002"),
        (end, "+37120000001"),
        # Back inside the absence: a decision already made is reused, and still right.
        (start + timedelta(seconds=1), "+37120000002"),
    ]
    heard = []
    for number, (moment, _) in enumerate(expected):
        at(moment)
        heard.append(dialled(twiml(twilio_post("/twilio/voice", voice_form(f"CA{number:032x}")))))
    assert heard == [[phone] for _, phone in expected]
    # All of it from one snapshot: the decisions were kept, not the directory re-read.
    assert runtime.directory.loads == 1


def test_a_running_process_announces_a_change_from_the_first_second_of_its_week(
    staffed: None, at: Callable, sessions: sessionmaker, runtime: Runtime, twilio_post: TwilioPost
) -> None:
    from datetime import date

    # Open round the clock, but on the calendar: a line open `always` hears of no change.
    always = "+37167000009"
    with sessions.begin() as session:
        directory.add_line(session, always, target="staff:jberzins", hours="mon-sun 00:00-24:00")
        # Tuesday 1 December: callers hear of it from Wednesday 25 November on (7 days ahead).
        directory.set_hours_change(
            session, date(2026, 12, 1), hours="10:00-12:00", message="Otrdien strādājam īsāk."
        )
    said = []
    for number, moment in enumerate(
        [datetime(2026, 11, 24, 23, 59, 59, tzinfo=RIGA), datetime(2026, 11, 25, 0, 0, tzinfo=RIGA)]
    ):
        at(moment)
        root = twiml(twilio_post("/twilio/voice", voice_form(f"CA{number + 100:032x}", to=always)))
        assert_notice_before_dial(root)
        said.append(" ".join(s.text or "" for s in root.iter("Say")))
    assert "īsāk" not in said[0]
    assert "īsāk" in said[1]
    assert runtime.directory.loads == 1
