"""Languages: Latvian first; English when asked for (`?lang=en`, kept in the session) or
preferred by the browser (Accept-Language). Strings are Latvian in the templates and code;
the English catalogue is console/translations/en/LC_MESSAGES/messages.po."""

from __future__ import annotations

from pathlib import Path

from flask import Flask, request, session
from flask_babel import Babel, get_locale

LANGUAGES = ("lv", "en")
DEFAULT = "lv"
TRANSLATIONS = Path(__file__).parent / "translations"


def select_locale() -> str:
    asked = request.args.get("lang")
    if asked in LANGUAGES:
        session["lang"] = asked
        return asked
    kept = session.get("lang")
    if kept in LANGUAGES:
        return str(kept)
    return request.accept_languages.best_match(LANGUAGES, default=DEFAULT) or DEFAULT


def current() -> str:
    return str(get_locale() or DEFAULT)


def init_app(app: Flask) -> None:
    app.config["BABEL_DEFAULT_LOCALE"] = DEFAULT
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = str(TRANSLATIONS)
    Babel(app, locale_selector=select_locale)
