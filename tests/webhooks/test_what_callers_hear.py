"""What callers hear is right and honest: voices, languages, forwarding, recording, survey.

Driven as Twilio drives the service: signed requests in, TwiML parsed as XML out.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from callcenter.calls.models import Call, CallEvent
from callcenter.directory import service as directory
from callcenter.runtime import Runtime
from callcenter.settings import check_voice, load
from tests.conftest import ACCOUNT_SID, PUBLIC_BASE_URL, RIGA, TwilioPost

DIRECT = "+37167000002"
GROUP_LINE = "+37167000001"
QUIET = "+37167000005"
SURVEYED = "+37167000006"
BOTH = "+37167000007"
CALLER = "+37129111111"
JANIS, LIGA, ANDRIS, ILZE = "+37120000001", "+37120000002", "+37120000003", "+37120000004"
# Monday 23 November 2026, 10:00 in Riga: inside the company's hours.
MONDAY = datetime(2026, 11, 23, 10, 0, tzinfo=RIGA)
# Jānis is away from the week before until Thursday 3 December, 08:00.
BACK = datetime(2026, 12, 3, 8, 0, tzinfo=RIGA)


@pytest.fixture
def env(env: dict[str, str]) -> dict[str, str]:
    """The line speaks Latvian, English and Russian."""
    return {**env, "NOTICE_LANGUAGES": "en-GB,ru-RU"}


@pytest.fixture
def staffed(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        directory.add_staff(session, "jberzins", name="Jānis Bērziņš", phone=JANIS)
        directory.add_staff(session, "lozola", name="Līga Ozola", phone=LIGA)
        directory.add_staff(session, "akalnins", name="Andris Kalniņš", phone=ANDRIS)
        directory.add_staff(session, "ipetersone", name="Ilze Pētersone", phone=ILZE)
        directory.add_group(
            session,
            "visi",
            name="Visi",
            members=["jberzins", "akalnins"],
            strategy="simultaneous",
        )
        directory.add_line(session, DIRECT, target="staff:jberzins")
        directory.add_line(session, GROUP_LINE, target="group:visi")
        directory.add_line(session, QUIET, target="staff:akalnins", record=False)
        directory.add_line(session, SURVEYED, target="staff:akalnins", survey=True)
        directory.add_line(session, BOTH, target="staff:jberzins", record=False, survey=True)
        directory.add_absence(
            session,
            "jberzins",
            starts_at=MONDAY - timedelta(days=7),
            ends_at=BACK,
            substitute_key="lozola",
        )


@pytest.fixture
def at(runtime: Runtime) -> Callable[[datetime], None]:
    def set_clock(moment: datetime) -> None:
        runtime.clock = lambda: moment.astimezone(UTC)

    set_clock(MONDAY)
    return set_clock


_sids: Iterator[int] = iter(range(1, 10**6))


def new_sid() -> str:
    return f"CA{next(_sids):032x}"


def form(call_sid: str, to: str = DIRECT, **extra: Any) -> dict[str, Any]:
    return {
        "CallSid": call_sid,
        "AccountSid": ACCOUNT_SID,
        "From": CALLER,
        "To": to,
        "CallStatus": "ringing",
        "Direction": "inbound",
        "ApiVersion": "2010-04-01",
        **extra,
    }


def twiml(response: Any) -> ET.Element:
    assert response.status_code == 200, response.data
    root = ET.fromstring(response.data)
    assert root.tag == "Response"
    return root


def says(root: ET.Element) -> list[tuple[str, str]]:
    return [(s.get("language") or "", s.text or "") for s in root.iter("Say")]


def text(root: ET.Element) -> str:
    return " ".join(t for _, t in says(root))


def assert_voices(root: ET.Element) -> None:
    """Every <Say> names a language and a voice that speaks it."""
    for say in root.iter("Say"):
        language, voice = say.get("language"), say.get("voice")
        assert language and voice, ET.tostring(say, encoding="unicode")
        assert check_voice(language, voice) is None, (language, voice)


def call_row(session: Session, call_sid: str) -> Call:
    session.expire_all()
    return session.scalars(select(Call).where(Call.call_sid == call_sid)).one()


# Voices on every path ------------------------------------------------------------------------


def test_every_twiml_path_names_a_voice_that_speaks_its_language(
    staffed: None,
    at: Callable,
    sessions: sessionmaker[Session],
    twilio_post: TwilioPost,
    runtime: Runtime,
) -> None:
    with sessions.begin() as session:
        directory.set_hours_change(session, date(2026, 11, 25), hours="10:00-12:00", message=None)
    heard: dict[str, ET.Element] = {}
    # The notice, the forwarding announcement and the hours change, then the dial.
    sid = new_sid()
    heard["notice and announcements"] = twiml(twilio_post("/twilio/voice", form(sid)))
    leg = {"CallSid": new_sid(), "ParentCallSid": sid, "AccountSid": ACCOUNT_SID, "To": LIGA}
    heard["whisper"] = twiml(twilio_post("/twilio/voice/whisper", leg))
    heard["whisper declined"] = twiml(twilio_post("/twilio/voice/whisper", {**leg, "Digits": "7"}))
    done = form(sid, DialCallStatus="no-answer", CallStatus="in-progress")
    heard["nobody: callback offer"] = twiml(twilio_post("/twilio/voice/dial-complete", done))
    heard["enter number"] = twiml(
        twilio_post("/twilio/voice/callback-request", form(sid, Digits="2"))
    )
    heard["bad number"] = twiml(
        twilio_post("/twilio/voice/callback-request", form(sid, Digits="12#"))
    )
    heard["callback confirmation"] = twiml(
        twilio_post("/twilio/voice/callback-request", form(sid, Digits="1"))
    )
    heard["goodbye"] = twiml(twilio_post("/twilio/voice/callback-request", form(sid, Digits="9")))
    # After hours: the hours and the callback offer.
    at(datetime(2026, 11, 23, 18, 0, tzinfo=RIGA))
    heard["after hours"] = twiml(twilio_post("/twilio/voice", form(new_sid())))
    at(MONDAY)
    # The fallback, with the apology, and after its dial.
    heard["fallback"] = twiml(twilio_post("/twilio/voice/fallback", form(new_sid())))
    missed = form(new_sid(), DialCallStatus="no-answer", CallStatus="in-progress")
    heard["fallback unanswered"] = twiml(
        twilio_post("/twilio/voice/fallback/dial-complete", missed)
    )
    heard["unknown line"] = twiml(twilio_post("/twilio/voice", form(new_sid(), to="+37167009999")))
    runtime.settings = runtime.settings.with_overrides(fallback_number=None)
    heard["apology without fallback"] = twiml(
        twilio_post("/twilio/voice/fallback", form(new_sid()))
    )
    # The survey: its question, its thanks.
    sid = new_sid()
    twiml(twilio_post("/twilio/voice", form(sid, to=SURVEYED)))
    answered = form(sid, to=SURVEYED, DialCallStatus="completed", CallStatus="in-progress")
    heard["survey"] = twiml(twilio_post("/twilio/voice/dial-complete", answered))
    heard["survey thanks"] = twiml(
        twilio_post("/twilio/voice/survey", form(sid, to=SURVEYED, Digits="4"))
    )
    for name, root in heard.items():
        assert list(root.iter("Say")), name
        assert_voices(root)
    # Callers hear every message in each of the line's languages, Latvian first; staff
    # (the whisper) hear Latvian.
    for name in ("nobody: callback offer", "after hours", "callback confirmation", "survey"):
        languages = [language for language, _ in says(heard[name])]
        assert languages[:3] == ["lv-LV", "en-GB", "ru-RU"], name
    assert {language for language, _ in says(heard["whisper"])} == {"lv-LV"}
    notice = heard["notice and announcements"]
    assert [v.tag for v in notice][-1] == "Dial"
    assert [language for language, _ in says(notice)] == ["lv-LV", "en-GB", "ru-RU"] * 3


def test_voices_come_from_the_settings(
    staffed: None, at: Callable, runtime: Runtime, twilio_post: TwilioPost
) -> None:
    runtime.settings = load(
        {
            "PUBLIC_BASE_URL": PUBLIC_BASE_URL,
            "NOTICE_LANGUAGES": "en-GB",
            "SAY_VOICE_LV": "Google.lv-LV-Standard-A",
            "SAY_VOICE_EN_GB": "Polly.Amy",
        }
    )
    root = twiml(twilio_post("/twilio/voice", form(new_sid(), to=QUIET)))
    offer = twiml(twilio_post("/twilio/voice/fallback", form(new_sid())))
    voices = {(s.get("language"), s.get("voice")) for r in (root, offer) for s in r.iter("Say")}
    assert voices == {("lv-LV", "Google.lv-LV-Standard-A"), ("en-GB", "Polly.Amy")}


@pytest.mark.parametrize(
    ("env_extra", "named"),
    [
        ({"SAY_VOICE_LV": "Polly.Amy"}, "SAY_VOICE_LV"),
        ({"SAY_VOICE_LV": "man"}, "SAY_VOICE_LV"),
        ({"SAY_VOICE_LV": "Google.en-GB-Standard-A"}, "SAY_VOICE_LV"),
        ({"NOTICE_LANGUAGES": "ru-RU", "SAY_VOICE_RU_RU": "Polly.Amy"}, "SAY_VOICE_RU_RU"),
        ({"NOTICE_LANGUAGES": "de-DE", "NOTICE_TEXT_DE_DE": "Hallo."}, "SAY_VOICE_DE_DE"),
        ({"RETENTION_MONTHS": "6"}, None),
        ({"RETENTION_MONTHS": "6", "NOTICE_TEXT_LV": "Glabājam trīs mēnešus."}, "NOTICE_TEXT_LV"),
        (
            {"NOTICE_LANGUAGES": "en-GB", "NOTICE_TEXT_EN_GB": "Kept for 3 months."},
            None,
        ),
        (
            {
                "RETENTION_MONTHS": "1",
                "NOTICE_LANGUAGES": "ru-RU",
                "NOTICE_TEXT_RU_RU": "Записи хранятся три месяца.",
            },
            "NOTICE_TEXT_RU_RU",
        ),
    ],
)
def test_a_voice_or_notice_that_does_not_fit_stops_the_process_naming_the_setting(
    env_extra: dict[str, str], named: str | None
) -> None:
    if named is None:
        load(env_extra)
        return
    with pytest.raises(Exception) as caught:
        load(env_extra)
    message = str(caught.value)
    assert "\n" not in message and named in message


# The notice follows RETENTION_MONTHS --------------------------------------------------------


@pytest.mark.parametrize(
    ("months", "lv", "en", "ru"),
    [
        (1, "vienu mēnesi", "one month", "один месяц"),
        (3, "trīs mēnešus", "three months", "три месяца"),
        (6, "sešus mēnešus", "six months", "шесть месяцев"),
        (21, "21 mēnesi", "21 months", "21 месяц"),
        (24, "24 mēnešus", "24 months", "24 месяца"),
    ],
)
def test_the_notice_names_the_retention_period_in_every_language(
    staffed: None,
    at: Callable,
    runtime: Runtime,
    twilio_post: TwilioPost,
    months: int,
    lv: str,
    en: str,
    ru: str,
) -> None:
    runtime.settings = runtime.settings.with_overrides(retention_months=months)
    notice = dict(says(twiml(twilio_post("/twilio/voice", form(new_sid(), to=SURVEYED)))))
    assert notice["lv-LV"].endswith(f"Ieraksti tiek glabāti {lv}.")
    assert "Jūs esat sazvanījuši" in notice["lv-LV"]
    assert notice["en-GB"].endswith(f"Recordings are kept for {en}.")
    assert notice["ru-RU"].endswith(f"Записи хранятся {ru}.")


# Honest forwarding ---------------------------------------------------------------------------


def test_a_caller_hears_who_is_away_until_when_and_who_answers_before_the_dial(
    staffed: None, at: Callable, twilio_post: TwilioPost
) -> None:
    root = twiml(twilio_post("/twilio/voice", form(new_sid())))
    verbs = list(root)
    assert [v.tag for v in verbs] == ["Say"] * 6 + ["Dial"]
    spoken = says(root)
    # The notice first, then the announcement, in each language, then the dial.
    assert "ierakstīta" in spoken[0][1]
    assert spoken[3] == (
        "lv-LV",
        "Jānis Bērziņš ir prombūtnē līdz ceturtdienai, 3. decembrim, plkst. 8.00. "
        "Jūsu zvanu pieņems Līga Ozola.",
    )
    assert spoken[4] == (
        "en-GB",
        "Jānis Bērziņš is away until Thursday 3 December, 8:00. "
        "Your call will be taken by Līga Ozola.",
    )
    assert spoken[5][1].startswith("Jānis Bērziņš отсутствует до четверга, 3 декабря, 8:00.")
    assert [n.text for n in root.iter("Number")] == [LIGA]


def test_the_substitute_is_a_colleague_where_names_are_not_announced(
    staffed: None, at: Callable, runtime: Runtime, twilio_post: TwilioPost
) -> None:
    quiet = runtime.settings.with_overrides(announce_substitute_names=False)
    runtime.settings = runtime.directory.settings = quiet
    spoken = says(twiml(twilio_post("/twilio/voice", form(new_sid()))))
    assert spoken[3][1].endswith("Jūsu zvanu pieņems kolēģis.")
    assert spoken[4][1].endswith("Your call will be taken by a colleague.")
    assert "Līga" not in text(twiml(twilio_post("/twilio/voice", form(new_sid()))))


def test_a_group_partly_present_announces_nothing_wholly_away_announces_it(
    staffed: None, at: Callable, sessions: sessionmaker[Session], twilio_post: TwilioPost
) -> None:
    partly = twiml(twilio_post("/twilio/voice", form(new_sid(), to=GROUP_LINE)))
    assert "prombūtnē" not in text(partly)
    # Andris is present and rings; Līga, for Jānis, rings in a step of her own after him.
    assert [n.text for n in partly.iter("Number")] == [ANDRIS]
    with sessions.begin() as session:
        directory.add_absence(
            session,
            "akalnins",
            starts_at=MONDAY - timedelta(hours=1),
            ends_at=datetime(2026, 11, 28, 0, 0, tzinfo=RIGA),
            substitute_key="ipetersone",
        )
    whole = says(twiml(twilio_post("/twilio/voice", form(new_sid(), to=GROUP_LINE))))
    # Until the first of them is back; an absence ending at midnight covers its last day.
    assert whole[3] == (
        "lv-LV",
        "Visi šīs nodaļas darbinieki ir prombūtnē līdz piektdienai, 27. novembrim, ieskaitot. "
        "Jūsu zvanu pieņems Līga Ozola vai Ilze Pētersone.",
    )
    assert whole[4][1].startswith(
        "Everyone in this department is away until and including Friday 27 November."
    )


def test_a_simultaneous_group_rings_a_substitute_after_the_present_never_beside_them(
    staffed: None, at: Callable, twilio_post: TwilioPost, session: Session
) -> None:
    sid = new_sid()
    twiml(twilio_post("/twilio/voice", form(sid, to=GROUP_LINE)))
    plan = call_row(session, sid).plan
    assert [[leg["phone"] for leg in step] for step in plan] == [[ANDRIS], [LIGA]]
    done = form(sid, to=GROUP_LINE, DialCallStatus="no-answer", CallStatus="in-progress")
    second = twiml(twilio_post("/twilio/voice/dial-complete", done))
    number = second.find("Dial/Number")
    assert number is not None and number.text == LIGA
    assert number.get("url") == PUBLIC_BASE_URL + "/twilio/voice/whisper"


def test_a_substitute_counts_as_answering_only_once_their_key_press_is_stored(
    staffed: None, at: Callable, twilio_post: TwilioPost, session: Session
) -> None:
    bridged = {"DialCallStatus": "completed", "CallStatus": "in-progress", "DialBridged": "true"}
    # Twilio says the dial was answered and bridged, but no key press of 1 was stored.
    sid, leg = new_sid(), new_sid()
    twiml(twilio_post("/twilio/voice", form(sid)))
    twilio_post("/twilio/voice/dial-complete", form(sid, DialCallSid=leg, **bridged))
    assert call_row(session, sid).outcome != "answered"
    # The whisper stores the press (the <Number url> request's CallSid and ParentCallSid).
    sid, leg = new_sid(), new_sid()
    twiml(twilio_post("/twilio/voice", form(sid)))
    accept = {"CallSid": leg, "ParentCallSid": sid, "AccountSid": ACCOUNT_SID, "To": LIGA}
    assert list(twiml(twilio_post("/twilio/voice/whisper", {**accept, "Digits": "1"}))) == []
    call = call_row(session, sid)
    events = session.scalars(select(CallEvent).where(CallEvent.call_id == call.id)).all()
    assert [(e.kind, e.leg_sid) for e in events] == [("accept", leg)]
    twilio_post("/twilio/voice/dial-complete", form(sid, DialCallSid=leg, **bridged))
    call = call_row(session, sid)
    assert (call.outcome, call.as_substitute) == ("answered", True)
    assert call.answered_by is not None and call.answered_by.key == "lozola"


# Hours changes --------------------------------------------------------------------------------


def test_a_one_off_change_says_one_thing_once(
    staffed: None, at: Callable, sessions: sessionmaker[Session], twilio_post: TwilioPost
) -> None:
    with sessions.begin() as session:
        directory.set_hours_change(
            session, date(2026, 11, 25), hours="08:00-12:00", message="25. novembrī līdz 12.00."
        )
        directory.add_line(session, "+37167000008", target="staff:akalnins", hours="always")
    spoken = says(twiml(twilio_post("/twilio/voice", form(new_sid(), to=QUIET))))
    latvian = [t for language, t in spoken if language == "lv-LV"]
    # The operator's message, once, instead of a generated sentence saying the same.
    assert latvian == ["25. novembrī līdz 12.00."]
    assert ("en-GB", "On Wednesday 25 November we are open from 8:00 to 12:00 only.") in spoken
    # A line open `always` is closed by no change, and hears of none.
    always = twiml(twilio_post("/twilio/voice", form(new_sid(), to="+37167000008")))
    assert "12.00" not in text(always)
    # On the day, after 12:00: closed, the message once, then when it opens again.
    at(datetime(2026, 11, 25, 13, 0, tzinfo=RIGA))
    closed = says(twiml(twilio_post("/twilio/voice", form(new_sid(), to=QUIET))))
    assert closed[0] == (
        "lv-LV",
        "Šobrīd klientu apkalpošanas dienests nestrādā. 25. novembrī līdz 12.00. "
        "Atkal strādāsim ceturtdien, 26. novembrī, no 8.00 līdz 17.00.",
    )
    assert text(twiml(twilio_post("/twilio/voice", form(new_sid(), to="+37167000008"))))


# Recording only where announced -----------------------------------------------------------


def test_a_line_that_does_not_record_plays_no_notice_and_records_nothing(
    staffed: None, at: Callable, twilio_post: TwilioPost, session: Session
) -> None:
    sid = new_sid()
    root = twiml(twilio_post("/twilio/voice", form(sid, to=QUIET)))
    assert [v.tag for v in root] == ["Dial"]
    dial = root.find("Dial")
    assert dial is not None
    assert not {k for k in dial.attrib if k.startswith("record")}
    assert dial.get("action") == PUBLIC_BASE_URL + "/twilio/voice/dial-complete"
    call = call_row(session, sid)
    assert (call.recorded, call.notice) == (False, None)
    recorded = new_sid()
    twiml(twilio_post("/twilio/voice", form(recorded, to=SURVEYED)))
    assert call_row(session, recorded).recorded is True


def test_a_line_switched_off_recording_takes_effect_on_the_next_call(
    staffed: None, at: Callable, sessions: sessionmaker[Session], twilio_post: TwilioPost
) -> None:
    assert twiml(twilio_post("/twilio/voice", form(new_sid(), to=SURVEYED))).find("Say") is not None
    with sessions.begin() as session:
        assert directory.set_line(session, SURVEYED, record=False) == ["record: yes -> no"]
    root = twiml(twilio_post("/twilio/voice", form(new_sid(), to=SURVEYED)))
    assert [v.tag for v in root] == ["Dial"]


def test_on_a_line_that_does_not_record_the_away_announcement_still_comes_first(
    staffed: None, at: Callable, twilio_post: TwilioPost
) -> None:
    root = twiml(twilio_post("/twilio/voice", form(new_sid(), to=BOTH)))
    assert [v.tag for v in root] == ["Say", "Say", "Say", "Dial"]
    assert "ierakstīta" not in text(root) and "prombūtnē" in text(root)


# The post-call survey -----------------------------------------------------------------------


def survey_call(
    twilio_post: TwilioPost, line: str = SURVEYED, **dial: str
) -> tuple[str, ET.Element]:
    sid = new_sid()
    twiml(twilio_post("/twilio/voice", form(sid, to=line)))
    return sid, twiml(twilio_post("/twilio/voice/dial-complete", form(sid, to=line, **dial)))


def test_after_an_answered_call_the_staff_ended_the_caller_is_asked_and_the_answer_stored(
    staffed: None, at: Callable, twilio_post: TwilioPost, session: Session
) -> None:
    sid, root = survey_call(twilio_post, DialCallStatus="completed", CallStatus="in-progress")
    gather = root.find("Gather")
    assert gather is not None and gather.get("numDigits") == "1"
    assert gather.get("action") == PUBLIC_BASE_URL + "/twilio/voice/survey"
    assert "no 1 līdz 5" in text(root)
    assert [v.tag for v in root] == ["Gather", "Hangup"]
    thanks = twiml(twilio_post("/twilio/voice/survey", form(sid, to=SURVEYED, Digits="5")))
    assert "Paldies par jūsu vērtējumu" in text(thanks)
    assert call_row(session, sid).survey == 5


@pytest.mark.parametrize(
    "dial",
    [
        {"DialCallStatus": "no-answer", "CallStatus": "in-progress"},
        {"DialCallStatus": "busy", "CallStatus": "in-progress"},
        # The caller hung up: nobody to ask.
        {"DialCallStatus": "completed", "CallStatus": "completed"},
    ],
)
def test_never_asked_after_a_missed_call_or_when_the_caller_ended_it(
    staffed: None, at: Callable, twilio_post: TwilioPost, dial: dict[str, str]
) -> None:
    _sid, root = survey_call(twilio_post, **dial)
    assert "no 1 līdz 5" not in text(root)
    assert all(g.get("action", "").endswith("/callback-request") for g in root.iter("Gather"))


def test_a_line_without_the_survey_hangs_up_after_the_conversation(
    staffed: None, at: Callable, twilio_post: TwilioPost
) -> None:
    _sid, root = survey_call(
        twilio_post, line=QUIET, DialCallStatus="completed", CallStatus="in-progress"
    )
    assert [v.tag for v in root] == ["Hangup"]


@pytest.mark.parametrize("digits", [None, "", "0", "6", "9", "#", "*", "12"])
def test_another_key_or_no_answer_stores_nothing_and_never_errors(
    staffed: None, at: Callable, twilio_post: TwilioPost, session: Session, digits: str | None
) -> None:
    sid, _root = survey_call(twilio_post, DialCallStatus="completed", CallStatus="in-progress")
    root = twiml(twilio_post("/twilio/voice/survey", form(sid, to=SURVEYED, Digits=digits)))
    assert root.find("Hangup") is not None
    assert call_row(session, sid).survey is None


def test_a_rating_for_a_call_that_was_not_answered_is_not_stored(
    staffed: None, at: Callable, twilio_post: TwilioPost, session: Session
) -> None:
    sid = new_sid()
    twiml(twilio_post("/twilio/voice", form(sid, to=SURVEYED)))
    root = twiml(twilio_post("/twilio/voice/survey", form(sid, to=SURVEYED, Digits="3")))
    assert root.find("Hangup") is not None
    assert call_row(session, sid).survey is None
    unknown = twiml(twilio_post("/twilio/voice/survey", form(new_sid(), Digits="3")))
    assert unknown.find("Hangup") is not None


# The fallback dial ---------------------------------------------------------------------------


def test_the_fallback_dial_reports_and_an_answered_one_is_logged_answered(
    staffed: None, at: Callable, twilio_post: TwilioPost, session: Session
) -> None:
    sid = new_sid()
    root = twiml(twilio_post("/twilio/voice", form(sid, to="+37167009999")))
    dial = root.find("Dial")
    assert dial is not None
    assert dial.get("action") == PUBLIC_BASE_URL + "/twilio/voice/fallback/dial-complete"
    number = dial.find("Number")
    assert number is not None and number.get("statusCallback") == (
        PUBLIC_BASE_URL + "/twilio/voice/status"
    )
    answered = form(
        sid,
        to="+37167009999",
        DialCallStatus="completed",
        DialCallSid=new_sid(),
        DialCallDuration="30",
        CallStatus="in-progress",
    )
    after = twiml(twilio_post("/twilio/voice/fallback/dial-complete", answered))
    assert [v.tag for v in after] == ["Hangup"]
    call = call_row(session, sid)
    assert (call.outcome, call.talk_seconds) == ("answered", 30)


def test_an_unanswered_fallback_dial_apologises_and_never_dials_again(
    staffed: None, at: Callable, twilio_post: TwilioPost, runtime: Runtime
) -> None:
    sid = new_sid()
    twiml(twilio_post("/twilio/voice", form(sid, to="+37167009999")))
    missed = form(sid, to="+37167009999", DialCallStatus="no-answer", CallStatus="in-progress")
    root = twiml(twilio_post("/twilio/voice/fallback/dial-complete", missed))
    assert root.find("Dial") is None and root.find("Hangup") is not None
    assert "piezvaniet vēlreiz" in text(root)
    # With the database gone as well: still TwiML, still no second dial.
    from callcenter.db import make_engine, make_sessionmaker

    runtime.engine = make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    runtime.sessions = make_sessionmaker(runtime.engine)
    failed = twiml(twilio_post("/twilio/voice/fallback/dial-complete", missed))
    assert failed.find("Dial") is None and failed.find("Hangup") is not None


def test_ratings_are_reported_per_line_and_per_staff_member(
    staffed: None, at: Callable, twilio_post: TwilioPost, session: Session
) -> None:
    from callcenter.calls import report

    for rating in ("5", "2"):
        sid, _root = survey_call(twilio_post, DialCallStatus="completed", CallStatus="in-progress")
        twiml(twilio_post("/twilio/voice/survey", form(sid, to=SURVEYED, Digits=rating)))
    survey_call(twilio_post, DialCallStatus="no-answer", CallStatus="in-progress")
    result = report.build(
        session, start=date(2026, 11, 23), end=date(2026, 11, 23), zone=RIGA, now=MONDAY
    ).to_json()
    line = next(row for row in result["lines"] if row["line"] == SURVEYED)
    assert (line["calls"], line["surveys"], line["survey_mean"]) == (3, 2, 3.5)
    andris = next(row for row in result["staff"] if row["staff"] == "akalnins")
    assert (andris["answered"], andris["surveys"], andris["survey_mean"]) == (2, 2, 3.5)
