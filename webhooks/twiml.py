"""TwiML builders: pure functions from settings and decisions to Twilio's XML.

Built with twilio-python's `VoiceResponse`, which escapes every text (names in a whisper
included); never by string formatting. Every callback URL is absolute, from PUBLIC_BASE_URL,
with no query string.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from twilio.twiml.voice_response import Gather, VoiceResponse

from callcenter.calls import speech
from callcenter.calls.routing import Leg
from callcenter.settings import Settings
from webhooks.paths import CALLBACK_REQUEST, DIAL_COMPLETE, RECORDING_STATUS, STATUS, WHISPER

LATVIAN = "lv-LV"

# Twilio writes attribute values with str(): event lists go as space-separated strings.
RECORDING_EVENTS = "completed absent"
CALL_EVENTS = "initiated ringing answered completed"
# Seconds a caller has to press a key before the menu moves on.
GATHER_TIMEOUT = 8
# Seconds a substitute has to accept a call before it is treated as not answered.
WHISPER_TIMEOUT = 6


def _say(response: VoiceResponse | Gather, text: str, language: str = LATVIAN) -> None:
    response.say(text, language=language)


def add_notice(response: VoiceResponse, settings: Settings) -> None:
    """The recording notice: the configured audio file, else the spoken texts, Latvian first."""
    if settings.notice_audio_url:
        response.play(settings.notice_audio_url)
        return
    for notice in settings.notice_languages:
        _say(response, notice.text, notice.language)


def add_dial(response: VoiceResponse, settings: Settings, legs: Sequence[Leg]) -> None:
    """A recorded <Dial> of the legs; its end goes to dial-complete."""
    dial = response.dial(
        action=settings.url_for(DIAL_COMPLETE),
        method="POST",
        timeout=settings.dial_timeout_seconds,
        record="record-from-answer-dual",
        recording_status_callback=settings.url_for(RECORDING_STATUS),
        recording_status_callback_method="POST",
        recording_status_callback_event=RECORDING_EVENTS,
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
    announcements: Iterable[str] = (),
) -> VoiceResponse:
    """Notice (on first contact), announcements of changed hours, then the recorded dial."""
    response = VoiceResponse()
    if with_notice:
        add_notice(response, settings)
    for text in announcements:
        _say(response, text)
    add_dial(response, settings, legs)
    return response


def callback_offer(
    settings: Settings, intro: str | None, *, caller_withheld: bool
) -> VoiceResponse:
    """Say why nobody answers, and offer a callback request; never just hang up."""
    response = VoiceResponse()
    if intro:
        _say(response, intro)
    gather = response.gather(
        num_digits=1,
        action=settings.url_for(CALLBACK_REQUEST),
        method="POST",
        timeout=GATHER_TIMEOUT,
    )
    _say(gather, speech.OFFER_CALLBACK_WITHHELD if caller_withheld else speech.OFFER_CALLBACK)
    _say(response, speech.GOODBYE)
    response.hangup()
    return response


def enter_number(settings: Settings, prefix: str | None = None) -> VoiceResponse:
    response = VoiceResponse()
    if prefix:
        _say(response, prefix)
    gather = response.gather(
        finish_on_key="#",
        num_digits=15,
        action=settings.url_for(CALLBACK_REQUEST),
        method="POST",
        timeout=GATHER_TIMEOUT * 2,
    )
    _say(gather, speech.ENTER_NUMBER)
    _say(response, speech.GOODBYE)
    response.hangup()
    return response


def say_and_hang_up(text: str) -> VoiceResponse:
    response = VoiceResponse()
    _say(response, text)
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
    _say(gather, speech.whisper(for_name))
    response.hangup()
    return response


def accept() -> VoiceResponse:
    """An empty response on the callee's side: Twilio bridges the call."""
    return VoiceResponse()


def fallback(settings: Settings, *, apology: bool) -> VoiceResponse:
    """Notice, then the configured fallback number; needs nothing but settings.

    Used by the Fallback URL and whenever a voice route fails: the caller hears an apology
    and is still connected (after the notice), never Twilio's application-error message.
    """
    response = VoiceResponse()
    if not settings.fallback_number:
        _say(response, speech.TECHNICAL_NO_FALLBACK)
        response.hangup()
        return response
    if apology:
        _say(response, speech.TECHNICAL_TROUBLE)
    add_notice(response, settings)
    dial = response.dial(
        timeout=settings.dial_timeout_seconds,
        record="record-from-answer-dual",
        recording_status_callback=settings.url_for(RECORDING_STATUS),
        recording_status_callback_method="POST",
        recording_status_callback_event=RECORDING_EVENTS,
    )
    dial.number(settings.fallback_number)
    _say(response, speech.GOODBYE)
    response.hangup()
    return response
