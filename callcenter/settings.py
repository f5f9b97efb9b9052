"""Settings: one frozen object built from the environment at start.

Required values have no defaults. A missing or malformed value raises `SettingsError`, whose
message is one line naming the setting; the command line and the WSGI entry point print that
line and exit, never a traceback and never a silent fallback.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

DEFAULT_DATABASE_URL = "sqlite:///var/callcenter.db"
DEFAULT_RECORDINGS_URL = "file:var/recordings"
DEFAULT_TWILIO_API_BASE_URL = "https://api.twilio.com"
DEFAULT_TIMEZONE = "Europe/Riga"
# The customer-service standard keeps recordings three months.
DEFAULT_RETENTION_MONTHS = 3
# Twilio rings a dialled number this long before giving up on it.
DEFAULT_DIAL_TIMEOUT_SECONDS = 20
# A callback request is due this many working days after the call.
DEFAULT_CALLBACK_WORKING_DAYS = 2
# A caller waits at most this long on the database before hearing the fallback: well under
# a second, so the whole answer (with gunicorn and the network) stays within one.
DEFAULT_VOICE_DATABASE_TIMEOUT_MS = 500

_ACCOUNT_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")
_LANGUAGE = re.compile(r"^[a-z]{2}-[A-Z]{2}$")


LATVIAN = "lv-LV"
# Twilio's default voice, `man`, speaks no Latvian, and "an invalid combination of voice and
# language may result in error and <Say> instruction failure" (Twilio's <Say> documentation).
# Latvian exists only among Twilio's Google voices; third-party voices "may change without
# prior notice", so these are settings (SAY_VOICE_LV, SAY_VOICE_EN_GB, ...), checked at start.
DEFAULT_VOICES = {
    "lv-LV": "Google.lv-LV-Standard-B",
    "en-GB": "Google.en-GB-Standard-A",
    "en-US": "Google.en-US-Standard-C",
    "ru-RU": "Google.ru-RU-Standard-A",
}
# The languages the service has every caller-facing text in (callcenter/calls/speech).
KNOWN_LANGUAGES = frozenset(DEFAULT_VOICES)
# Amazon Polly voices Twilio offers, by the language they speak (Polly has no Latvian voice).
POLLY_VOICES = {
    "en-GB": frozenset({"Amy", "Emma", "Brian", "Arthur"}),
    "en-US": frozenset(
        {"Joanna", "Matthew", "Salli", "Kendra", "Kimberly", "Ivy", "Justin", "Joey", "Kevin"}
        | {"Ruth", "Stephen", "Danielle", "Gregory"}
    ),
    "ru-RU": frozenset({"Tatyana", "Maxim"}),
}
_GOOGLE_VOICE = re.compile(r"^Google\.(?P<language>[a-z]{2,3}-[A-Z]{2})-[A-Za-z0-9-]+$")
_POLLY_VOICE = re.compile(r"^Polly\.(?P<name>[A-Z][a-z]+)(?:-(?:Neural|Generative))?$")


class SettingsError(Exception):
    """A setting is missing or malformed; the message is one line naming it."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"setting {name}: {problem}")
        self.name = name


@dataclass(frozen=True)
class NoticeLanguage:
    """One language callers hear, with its custom notice text (None: the default text, which
    follows RETENTION_MONTHS)."""

    language: str
    text: str | None


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    recordings_url: str = DEFAULT_RECORDINGS_URL
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    # During a token rotation, the other token: signatures made with it are accepted too.
    twilio_auth_token_secondary: str | None = None
    twilio_api_base_url: str = DEFAULT_TWILIO_API_BASE_URL
    public_base_url: str | None = None
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo(DEFAULT_TIMEZONE))
    retention_months: int = DEFAULT_RETENTION_MONTHS
    secret_key: str | None = None
    # Where the recording notice comes from: an audio file played with <Play>, else spoken text.
    notice_audio_url: str | None = None
    notice_languages: tuple[NoticeLanguage, ...] = ()
    # The number the fallback route dials when the database cannot be reached.
    fallback_number: str | None = None
    # Moved days off bind state institutions; most employers follow them (DESIGN: calendar).
    moved_days_off: bool = True
    dial_timeout_seconds: int = DEFAULT_DIAL_TIMEOUT_SECONDS
    callback_working_days: int = DEFAULT_CALLBACK_WORKING_DAYS
    s3_server_side_encryption: str | None = None
    s3_kms_key_id: str | None = None
    # The <Say> voice of each spoken language (Latvian and each of NOTICE_LANGUAGES).
    say_voices: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_VOICES))
    # Whether callers hear the substitute's name when the person they called is away.
    announce_substitute_names: bool = True
    # Every database wait of a voice route ends within this; then the caller hears the fallback.
    voice_database_timeout_ms: int = DEFAULT_VOICE_DATABASE_TIMEOUT_MS
    # Log lines: "text" (one line, time first) or "json" (one object per line).
    log_format: str = "text"
    development: bool = False
    # Whether the console's session cookie is marked Secure (sent over https only).
    secure_cookies: bool = True
    # The bearer token /metrics asks for; without it /metrics answers 404.
    metrics_token: str | None = None

    @property
    def languages(self) -> tuple[str, ...]:
        """The languages callers hear, Latvian first."""
        return tuple(item.language for item in self.notice_languages) or (LATVIAN,)

    def voice_for(self, language: str) -> str:
        """The <Say> voice for a language callers hear (validated at start)."""
        return self.say_voices.get(language) or DEFAULT_VOICES[LATVIAN]

    def require(self, name: str) -> str:
        """Return a setting that this process needs, or stop with one line naming it."""
        # Each setting's attribute is its variable's name in lower case: the name is written once.
        value = getattr(self, name.lower())
        if not value:
            raise SettingsError(name, "is required and not set")
        return str(value)

    def url_for(self, path: str) -> str:
        """Return the absolute URL Twilio uses for one of our paths."""
        return self.require("PUBLIC_BASE_URL").rstrip("/") + path

    def with_overrides(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]


# The default notice texts live with every other text callers hear (callcenter/calls/speech)
# and follow RETENTION_MONTHS; a custom NOTICE_TEXT_* is checked against it at start.
# Number words a notice may name the period with, per language family.
_NUMBER_WORDS = {
    **dict.fromkeys(("viens", "vienu", "one", "один", "одного"), 1),
    **dict.fromkeys(("divi", "divus", "two", "два", "двух"), 2),
    **dict.fromkeys(("trīs", "three", "три", "трёх", "трех"), 3),
    **dict.fromkeys(("četri", "četrus", "four", "четыре", "четырёх"), 4),
    **dict.fromkeys(("pieci", "piecus", "five", "пять", "пяти"), 5),
    **dict.fromkeys(("seši", "sešus", "six", "шесть", "шести"), 6),
    **dict.fromkeys(("septiņi", "septiņus", "seven", "семь"), 7),
    **dict.fromkeys(("astoņi", "astoņus", "eight", "восемь"), 8),
    **dict.fromkeys(("deviņi", "deviņus", "nine", "девять"), 9),
    **dict.fromkeys(("desmit", "ten", "десять"), 10),
    **dict.fromkeys(("twelve", "divpadsmit", "двенадцать"), 12),
}
_PERIOD = re.compile(
    r"(?P<count>\d+|[^\W\d_]+)\s+(?:kalendāra\s+|calendar\s+|календарн\w*\s+)?"
    r"(?:mēne\w*|months?|месяц\w*)",
    re.IGNORECASE,
)


def named_months(text: str) -> set[int]:
    """Return the numbers of months a notice text names ("trīs mēnešus", "6 months")."""
    found = set()
    for match in _PERIOD.finditer(text):
        count = match["count"].lower()
        if count.isdigit():
            found.add(int(count))
        elif count in _NUMBER_WORDS:
            found.add(_NUMBER_WORDS[count])
    year = r"\b(?:a|one)\s+year\b|\bgadu\b|\bгод\b"  # noqa: RUF001 - Russian "year"
    if re.search(year, text, re.IGNORECASE):
        found.add(12)
    return found


def _text(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    if value is None:
        return None
    value = value.strip()
    return value or None


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def redacted(url: str) -> str:
    """A URL as a message may show it: without the user and password it may carry."""
    head, at, rest = url.rpartition("@")
    if not at:
        return url
    scheme, slashes, _ = head.partition("//")
    return (scheme + slashes if slashes else "") + "***@" + rest


def is_loopback(url: str) -> bool:
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return False
    return host in LOOPBACK or (host or "").startswith("127.")


def _http_url(name: str, value: str, *, https_only: bool, loopback_http: bool = False) -> str:
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port that is no number
    except ValueError:
        raise SettingsError(name, f"is not a URL: {redacted(value)!r}") from None
    https = https_only and not (loopback_http and is_loopback(value))
    schemes = ("https",) if https else ("http", "https")
    if parts.scheme not in schemes or not parts.netloc:
        want = "an https:// address" if https else "an http(s):// address"
        if loopback_http and https:
            want += " (http only on loopback)"
        raise SettingsError(name, f"must be {want}, got {redacted(value)!r}")
    if parts.query or parts.fragment:
        raise SettingsError(name, "must not carry a query string or fragment")
    return value.rstrip("/")


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = _text(env, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(name, f"must be a whole number, got {raw!r}") from None
    if not low <= value <= high:
        raise SettingsError(name, f"must be between {low} and {high}, got {value}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = _text(env, name)
    if raw is None:
        return default
    lowered = raw.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise SettingsError(name, f"must be true or false, got {raw!r}")


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...], default: str) -> str:
    raw = _text(env, name)
    if raw is None:
        return default
    if raw.lower() not in choices:
        raise SettingsError(name, f"must be one of {', '.join(choices)}, got {raw!r}")
    return raw.lower()


def _e164(name: str, raw: str) -> str:
    try:
        parsed = phonenumbers.parse(raw, "LV")
    except phonenumbers.NumberParseException:
        raise SettingsError(name, f"is not a phone number: {raw!r}") from None
    if not phonenumbers.is_valid_number(parsed):
        raise SettingsError(name, f"is not a valid phone number: {raw!r}")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


# A token guessable in fewer tries than a UUID's is refused at start.
MIN_METRICS_TOKEN_CHARS = 24


def _metrics_token(env: Mapping[str, str]) -> str | None:
    token = _text(env, "METRICS_TOKEN")
    usable = token is None or (
        len(token) >= MIN_METRICS_TOKEN_CHARS
        and token.isascii()
        and token.isprintable()
        and not any(c.isspace() for c in token)
    )
    if not usable:
        raise SettingsError(
            "METRICS_TOKEN",
            f"must be at least {MIN_METRICS_TOKEN_CHARS} printable ASCII characters, no spaces "
            "(`python -c 'import secrets; print(secrets.token_urlsafe(32))'`)",
        )
    return token


def _setting_suffix(language: str) -> str:
    return language.replace("-", "_").upper()


def _notice_text(env: Mapping[str, str], name: str, months: int) -> str | None:
    text = _text(env, name)
    if text is not None:
        other = named_months(text) - {months}
        if other:
            raise SettingsError(
                name,
                f"names a period of {', '.join(str(n) for n in sorted(other))} months, but "
                f"RETENTION_MONTHS is {months}: say the period that is kept",
            )
    return text


def _notice_languages(env: Mapping[str, str], months: int) -> tuple[NoticeLanguage, ...]:
    """Latvian first, always; then NOTICE_LANGUAGES (comma-separated, like `en-GB,ru-RU`)."""
    result = [NoticeLanguage(LATVIAN, _notice_text(env, "NOTICE_TEXT_LV", months))]
    raw = _text(env, "NOTICE_LANGUAGES")
    for code in raw.split(",") if raw else []:
        code = code.strip()
        if not code or code == LATVIAN:
            continue
        if not _LANGUAGE.match(code):
            raise SettingsError("NOTICE_LANGUAGES", f"{code!r} is not a language like en-GB")
        name = "NOTICE_TEXT_" + _setting_suffix(code)
        text = _notice_text(env, name, months)
        if text is None and code not in KNOWN_LANGUAGES:
            raise SettingsError(name, f"is required for the notice language {code}")
        result.append(NoticeLanguage(code, text))
    return tuple(result)


def check_voice(language: str, voice: str) -> str | None:
    """Say what is wrong with a <Say> voice for a language, or None when it speaks it."""
    google = _GOOGLE_VOICE.match(voice)
    if google:
        if google["language"] != language:
            return f"{voice!r} speaks {google['language']}, not {language}"
        return None
    polly = _POLLY_VOICE.match(voice)
    if polly:
        if polly["name"] in POLLY_VOICES.get(language, frozenset()):
            return None
        if language == LATVIAN:
            return f"{voice!r} is an Amazon Polly voice; Polly has no Latvian voice"
        return f"{voice!r} is not an Amazon Polly voice known to speak {language}"
    return (
        f"{voice!r} is not a voice known to speak {language}; give a Google voice "
        f"like Google.{language}-Standard-A (Twilio's default voice, man, speaks no Latvian)"
    )


def _voices(env: Mapping[str, str], languages: tuple[NoticeLanguage, ...]) -> dict[str, str]:
    """The voice of each spoken language: SAY_VOICE_LV, SAY_VOICE_EN_GB, ..."""
    voices = {}
    for item in languages:
        name = (
            "SAY_VOICE_LV"
            if item.language == LATVIAN
            else "SAY_VOICE_" + _setting_suffix(item.language)
        )
        voice = _text(env, name) or DEFAULT_VOICES.get(item.language)
        if voice is None:
            raise SettingsError(name, f"is required for the spoken language {item.language}")
        problem = check_voice(item.language, voice)
        if problem is not None:
            raise SettingsError(name, problem)
        voices[item.language] = voice
    return voices


def load(env: Mapping[str, str] | None = None, *, development: bool = False) -> Settings:
    """Build the settings from the environment; raise SettingsError on a bad value."""
    env = os.environ if env is None else env

    database_url = _text(env, "DATABASE_URL") or DEFAULT_DATABASE_URL
    if "://" not in database_url:
        raise SettingsError("DATABASE_URL", f"is not a database URL: {redacted(database_url)!r}")
    if database_url.startswith("postgres://"):
        # Heroku-style URLs name the scheme SQLAlchemy removed; psycopg 3 is the driver here.
        database_url = "postgresql+psycopg://" + database_url[len("postgres://") :]
    elif database_url.startswith("postgresql://"):
        database_url = "postgresql+psycopg://" + database_url[len("postgresql://") :]
    try:
        url = make_url(database_url)
    except ArgumentError:
        url = None
    if url is None or url.get_backend_name() not in ("sqlite", "postgresql"):
        raise SettingsError("DATABASE_URL", "must be a sqlite:// or postgresql:// URL")
    try:
        # A driver that is named but not installed fails here, naming the setting, rather than
        # on the first query (where every call would get the fallback answer).
        url.get_dialect().import_dbapi()
    except Exception as exc:
        raise SettingsError(
            "DATABASE_URL", f"names driver {url.drivername!r}, which cannot be loaded: {exc}"
        ) from None

    recordings_url = _text(env, "RECORDINGS_URL") or DEFAULT_RECORDINGS_URL
    if recordings_url.startswith("file:"):
        if not recordings_url[len("file:") :]:
            raise SettingsError("RECORDINGS_URL", "file: needs a path, like file:var/recordings")
    elif recordings_url.startswith("s3://"):
        if not urlsplit(recordings_url).netloc:
            raise SettingsError("RECORDINGS_URL", "s3:// needs a bucket, like s3://bucket/prefix")
    else:
        raise SettingsError(
            "RECORDINGS_URL",
            f"must be file:PATH or s3://bucket/prefix, got {redacted(recordings_url)!r}",
        )

    account_sid = _text(env, "TWILIO_ACCOUNT_SID")
    if account_sid is not None and not _ACCOUNT_SID.match(account_sid):
        raise SettingsError("TWILIO_ACCOUNT_SID", "must be AC followed by 32 hexadecimal digits")

    # The account's token goes with every request: only over TLS, or to a fake on loopback.
    api_base = _http_url(
        "TWILIO_API_BASE_URL",
        _text(env, "TWILIO_API_BASE_URL") or DEFAULT_TWILIO_API_BASE_URL,
        https_only=True,
        loopback_http=True,
    )
    public_base = _text(env, "PUBLIC_BASE_URL")
    if public_base is not None:
        # Twilio only calls https in production; plain http is for loopback development.
        public_base = _http_url("PUBLIC_BASE_URL", public_base, https_only=not development)

    tz_name = _text(env, "CALLCENTER_TIMEZONE") or DEFAULT_TIMEZONE
    try:
        timezone = ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise SettingsError(
            "CALLCENTER_TIMEZONE", f"is not a known time zone: {tz_name!r}"
        ) from None

    fallback = _text(env, "FALLBACK_NUMBER")
    sse = _text(env, "S3_SERVER_SIDE_ENCRYPTION")
    if sse is not None and sse not in ("AES256", "aws:kms"):
        raise SettingsError("S3_SERVER_SIDE_ENCRYPTION", "must be AES256 or aws:kms")

    retention_months = _int(env, "RETENTION_MONTHS", DEFAULT_RETENTION_MONTHS, 1, 120)
    notice_languages = _notice_languages(env, retention_months)
    notice_audio = _text(env, "NOTICE_AUDIO_URL")
    if notice_audio is not None:
        notice_audio = _http_url("NOTICE_AUDIO_URL", notice_audio, https_only=False)

    # Secure cookies unless the service is reached over plain http (loopback development).
    secure_default = not (development or (public_base or "").startswith("http://"))

    return Settings(
        database_url=database_url,
        recordings_url=recordings_url,
        twilio_account_sid=account_sid,
        twilio_auth_token=_text(env, "TWILIO_AUTH_TOKEN"),
        twilio_auth_token_secondary=_text(env, "TWILIO_AUTH_TOKEN_SECONDARY"),
        twilio_api_base_url=api_base,
        public_base_url=public_base,
        timezone=timezone,
        retention_months=retention_months,
        secret_key=_text(env, "SECRET_KEY"),
        notice_audio_url=notice_audio,
        notice_languages=notice_languages,
        say_voices=_voices(env, notice_languages),
        announce_substitute_names=_bool(env, "ANNOUNCE_SUBSTITUTE_NAMES", True),
        fallback_number=_e164("FALLBACK_NUMBER", fallback) if fallback else None,
        moved_days_off=_bool(env, "CALENDAR_MOVED_DAYS_OFF", True),
        dial_timeout_seconds=_int(
            env, "DIAL_TIMEOUT_SECONDS", DEFAULT_DIAL_TIMEOUT_SECONDS, 5, 600
        ),
        callback_working_days=_int(
            env, "CALLBACK_WORKING_DAYS", DEFAULT_CALLBACK_WORKING_DAYS, 0, 30
        ),
        s3_server_side_encryption=sse,
        s3_kms_key_id=_text(env, "S3_KMS_KEY_ID"),
        voice_database_timeout_ms=_int(
            env, "VOICE_DATABASE_TIMEOUT_MS", DEFAULT_VOICE_DATABASE_TIMEOUT_MS, 100, 5000
        ),
        log_format=_choice(env, "LOG_FORMAT", ("text", "json"), "text"),
        development=development,
        secure_cookies=_bool(env, "CONSOLE_SECURE_COOKIES", secure_default),
        metrics_token=_metrics_token(env),
    )


# Development only (`callcenter serve`, `callcenter simulate-call`): well-known values so a
# newcomer can run the service with no accounts. Never used by `callcenter web` or gunicorn.
DEVELOPMENT_ACCOUNT_SID = "AC" + "0" * 32
DEVELOPMENT_AUTH_TOKEN = "development-only-auth-token"  # noqa: S105 - loopback only, by design
DEVELOPMENT_SECRET_KEY = "development-only-secret-key"  # noqa: S105
DEVELOPMENT_PORT = 5000


def development_env(env: Mapping[str, str], port: int = DEVELOPMENT_PORT) -> dict[str, str]:
    """Fill in what a development run lacks; say which were filled."""
    filled = dict(env)
    defaults = {
        "TWILIO_ACCOUNT_SID": DEVELOPMENT_ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": DEVELOPMENT_AUTH_TOKEN,
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "SECRET_KEY": DEVELOPMENT_SECRET_KEY,
        "FALLBACK_NUMBER": "+37167000000",
    }
    for name, value in defaults.items():
        if not (env.get(name) or "").strip():
            filled[name] = value
    return filled


def for_jobs(settings: Settings) -> Settings:
    """Check what a job that talks to Twilio needs (ingestion, reconciliation, the sweep).

    Checked at start, so that a missing account stops the process with one line instead of
    every run logging failures (and the sweep writing them into the permanent log).
    """
    for name in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"):
        settings.require(name)
    return settings


def for_web(settings: Settings) -> Settings:
    """Check what the web process needs: Twilio's token and the public address."""
    for name in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "PUBLIC_BASE_URL"):
        settings.require(name)
    if not settings.development:
        settings.require("SECRET_KEY")
    return settings
