"""TwiML builders: pure functions from settings and decisions to Twilio's XML.

Built with twilio-python's `VoiceResponse`, which escapes every text (names in a whisper
included); never by string formatting. Every callback URL is absolute, from PUBLIC_BASE_URL,
with no query string. Every <Say> names its voice (settings SAY_VOICE_*): Twilio's default
voice, `man`, speaks no Latvian. Callers hear each message in each of the line's languages,
Latvian first; staff (the whisper) hear Latvian.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TypeAlias

from twilio.twiml.voice_response import Gather, VoiceResponse

from callcenter.calls import speech
from callcenter.calls.routing import Leg
from callcenter.settings import LATVIAN, Settings
from webhooks.paths import (
    CALLBACK_REQUEST,
    DIAL_COMPLETE,
    FALLBACK_DIAL_COMPLETE,
    RECORDING_STATUS,
    STATUS,
    SURVEY,
    WHISPER,
)

# Twilio writes attribute values with str(): event lists go as space-separated strings.
RECORDING_EVENTS = "completed absent"
CALL_EVENTS = "initiated ringing answered completed"
# Seconds a caller has to press a key before the menu moves on.
GATHER_TIMEOUT = 8
# Seconds a substitute has to accept a call before it is treated as not answered.
WHISPER_TIMEOUT = 6
# Digits a survey answer may be.
SURVEY_DIGITS = frozenset("12345")

Node: TypeAlias = VoiceResponse | Gather


def _say(node: Node, settings: Settings, language: str, text: str) -> None:
    node.say(text, language=language, voice=settings.voice_for(language))


def speak(node: Node, settings: Settings, messages: Iterable[speech.Message]) -> None:
    """Say each message in each of the line's languages, Latvian first."""
    for language, text in speech.spoken(messages, settings.languages):
        _say(node, settings, language, text)


def add_notice(response: VoiceResponse, settings: Settings) -> None:
    """The recording notice: the configured audio file, else the spoken texts, Latvian first.

    The default texts name RETENTION_MONTHS; a custom NOTICE_TEXT_* was checked against it.
    """
    if settings.notice_audio_url:
        response.play(settings.notice_audio_url)
        return
    for notice in settings.notice_languages:
        text = notice.text
        if text is None:
            texts = speech.texts_for(notice.language)
            assert texts is not None  # settings refuse a language with neither
            text = texts.notice(settings.retention_months)
        _say(response, settings, notice.language, text)


def _recording(settings: Settings) -> dict[str, str]:
    return {
        "record": "record-from-answer-dual",
        "recording_status_callback": settings.url_for(RECORDING_STATUS),
        "recording_status_callback_method": "POST",
        "recording_status_callback_event": RECORDING_EVENTS,
    }


def add_dial(
    response: VoiceResponse, settings: Settings, legs: Sequence[Leg], *, record: bool = True
) -> None:
    """A <Dial> of the legs, recorded where the line records; its end goes to dial-complete."""
    dial = response.dial(
        action=settings.url_for(DIAL_COMPLETE),
        method="POST",
        timeout=settings.dial_timeout_seconds,
        **(_recording(settings) if record else {}),
    )
    for leg in legs:
        extra = {}
        if leg.for_key is not None:
            # A substitute hears whose call it is and must press a key: voicemail cannot.
            extra = {"url": settings.url_for(WHISPER), "method": "POST"}
        dial.number(
            leg.phone,
            status_callback=settings.url_for(STATUS),
            status_callback_event=CALL_EVENTS,
            status_callback_method="POST",
            **extra,
        )


def connect(
    settings: Settings,
    legs: Sequence[Leg],
    *,
    with_notice: bool,
    announcements: Iterable[speech.Message] = (),
    record: bool = True,
) -> VoiceResponse:
    """On first contact: the notice (where the line records), whom the caller is forwarded to
    and changed hours; then the dial, recorded where the line records."""
    response = VoiceResponse()
    if with_notice and record:
        add_notice(response, settings)
    speak(response, settings, announcements)
    add_dial(response, settings, legs, record=record)
    return response


def callback_offer(
    settings: Settings, intro: Iterable[speech.Message], *, caller_withheld: bool
) -> VoiceResponse:
    """Say why nobody answers, and offer a callback request; never just hang up."""
    response = VoiceResponse()
    speak(response, settings, intro)
    gather = response.gather(
        num_digits=1,
        action=settings.url_for(CALLBACK_REQUEST),
        method="POST",
        timeout=GATHER_TIMEOUT,
    )
    offer = speech.OFFER_CALLBACK_WITHHELD if caller_withheld else speech.OFFER_CALLBACK
    speak(gather, settings, [offer])
    speak(response, settings, [speech.GOODBYE])
    response.hangup()
    return response


def enter_number(settings: Settings, prefix: speech.Message | None = None) -> VoiceResponse:
    response = VoiceResponse()
    if prefix is not None:
        speak(response, settings, [prefix])
    gather = response.gather(
        finish_on_key="#",
        num_digits=15,
        action=settings.url_for(CALLBACK_REQUEST),
        method="POST",
        timeout=GATHER_TIMEOUT * 2,
    )
    speak(gather, settings, [speech.ENTER_NUMBER])
    speak(response, settings, [speech.GOODBYE])
    response.hangup()
    return response


def say_and_hang_up(settings: Settings, *messages: speech.Message) -> VoiceResponse:
    """Tell the caller something in each of the line's languages, then hang up."""
    response = VoiceResponse()
    speak(response, settings, messages)
    response.hangup()
    return response


def hang_up() -> VoiceResponse:
    response = VoiceResponse()
    response.hangup()
    return response


def whisper_prompt(settings: Settings, for_name: str) -> VoiceResponse:
    """Tell the substitute whose call it is; no key press in time means not answered."""
    response = VoiceResponse()
    gather = response.gather(
        num_digits=1, action=settings.url_for(WHISPER), method="POST", timeout=WHISPER_TIMEOUT
    )
    _say(gather, settings, LATVIAN, speech.whisper(for_name))
    response.hangup()
    return response


def whisper_declined(settings: Settings) -> VoiceResponse:
    """The substitute pressed another key: tell them (in Latvian) and hang up their leg."""
    response = VoiceResponse()
    _say(response, settings, LATVIAN, speech.WHISPER_DECLINED)
    response.hangup()
    return response


def accept() -> VoiceResponse:
    """An empty response on the callee's side: Twilio bridges the call."""
    return VoiceResponse()


def fallback(settings: Settings, *, apology: bool) -> VoiceResponse:
    """Notice, then the configured fallback number; needs nothing but settings.

    Used by the Fallback URL and whenever a voice route fails: the caller hears an apology
    and is still connected (after the notice), never Twilio's application-error message. The
    dial reports its end and its leg's progress like every other dial, to a route of its own
    that never dials again.
    """
    response = VoiceResponse()
    if not settings.fallback_number:
        speak(response, settings, [speech.TECHNICAL_NO_FALLBACK])
        response.hangup()
        return response
    if apology:
        speak(response, settings, [speech.TECHNICAL_TROUBLE])
    add_notice(response, settings)
    dial = response.dial(
        action=settings.url_for(FALLBACK_DIAL_COMPLETE),
        method="POST",
        timeout=settings.dial_timeout_seconds,
        **_recording(settings),
    )
    dial.number(
        settings.fallback_number,
        status_callback=settings.url_for(STATUS),
        status_callback_event=CALL_EVENTS,
        status_callback_method="POST",
    )
    return response


def fallback_ended(settings: Settings, *, answered: bool) -> VoiceResponse:
    """After the fallback dial: done if answered, else an apology; never another dial."""
    if answered:
        return hang_up()
    return say_and_hang_up(settings, speech.TECHNICAL_NO_FALLBACK)


def survey(settings: Settings) -> VoiceResponse:
    """Ask the caller to rate the conversation, 1-5 on the keypad; nothing pressed: goodbye."""
    response = VoiceResponse()
    gather = response.gather(
        num_digits=1, action=settings.url_for(SURVEY), method="POST", timeout=GATHER_TIMEOUT
    )
    speak(gather, settings, [speech.SURVEY_QUESTION])
    response.hangup()
    return response
