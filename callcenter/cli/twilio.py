"""`callcenter twilio configure E164 [--check]`: point a Twilio number at this service.

Through Twilio's REST API (`IncomingPhoneNumbers`): the number is found by `PhoneNumber`,
then its Voice URL, Fallback URL and call status callback are set from PUBLIC_BASE_URL, each
with method POST (signatures are computed over exactly these addresses).
"""

from __future__ import annotations

import click

from callcenter import phones
from callcenter.adapters.twilio_api import TwilioApi, TwilioApiError
from callcenter.cli.common import CliError, runtime
from callcenter.settings import Settings
from webhooks import paths


def wanted(settings: Settings) -> dict[str, str]:
    """The number's voice configuration this service needs, as Twilio's field names."""
    return {
        "VoiceUrl": settings.url_for(paths.VOICE),
        "VoiceMethod": "POST",
        "VoiceFallbackUrl": settings.url_for(paths.FALLBACK),
        "VoiceFallbackMethod": "POST",
        "StatusCallback": settings.url_for(paths.STATUS),
        "StatusCallbackMethod": "POST",
    }


def _property(field: str) -> str:
    """Twilio's JSON names a form field in snake case: VoiceFallbackUrl -> voice_fallback_url."""
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in field).lstrip("_")


def differences(current: dict[str, object], want: dict[str, str]) -> dict[str, tuple[str, str]]:
    """Each field whose value at Twilio differs from what we need: (theirs, ours)."""
    found = {}
    for field, value in want.items():
        theirs = current.get(_property(field))
        theirs_text = "" if theirs is None else str(theirs)
        # Twilio answers methods in capitals; compare them as such.
        if field.endswith("Method"):
            theirs_text = theirs_text.upper()
        if theirs_text != value:
            found[field] = (theirs_text, value)
    return found


@click.group("twilio")
def twilio() -> None:
    """The Twilio account's side of the line."""


@twilio.command("configure")
@click.argument("number")
@click.option("--check", is_flag=True, help="Change nothing; print each difference, exit 1 if any.")
def configure(number: str, check: bool) -> None:
    """Set the number's Voice URL, Fallback URL and status callback from PUBLIC_BASE_URL."""
    try:
        e164 = phones.normalize(number)
    except phones.InvalidPhone as exc:
        raise CliError(f"NUMBER: {exc}") from None
    settings = runtime().settings
    for name in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "PUBLIC_BASE_URL"):
        settings.require(name)
    want = wanted(settings)
    api = TwilioApi(settings)
    try:
        current = api.find_number(e164)
        if current is None:
            raise CliError(f"the Twilio account {api.account_sid} has no number {e164}")
        diff = differences(current, want)
        for field, (theirs, ours) in diff.items():
            click.echo(f"{e164} {field}: {theirs or '(not set)'} -> {ours}")
        if check:
            if diff:
                raise CliError(
                    f"{e164}: {len(diff)} setting(s) differ from what PUBLIC_BASE_URL needs; "
                    "run without --check to set them"
                )
            click.echo(f"{e164} is configured for {settings.require('PUBLIC_BASE_URL')}")
            return
        if diff:
            api.update_number(str(current.get("sid")), want)
            click.echo(f"{e164} configured for {settings.require('PUBLIC_BASE_URL')}")
        else:
            click.echo(f"{e164} was configured already")
    except TwilioApiError as exc:
        raise CliError(f"Twilio's API: {exc}") from None
    finally:
        api.close()


def register(cli: click.Group) -> None:
    cli.add_command(twilio)
