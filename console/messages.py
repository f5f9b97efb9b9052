"""The domain's refusals in the reader's language (the domain's own text is the CLI's)."""

from __future__ import annotations

from flask_babel import gettext, lazy_gettext

from callcenter.directory.service import DirectoryError
from callcenter.localtime import LocalTimeError

_DIRECTORY = {
    "end-before-start": lazy_gettext("Beigām jābūt vēlāk par sākumu."),
    "self-substitute": lazy_gettext("Neviens nevar aizvietot pats sevi."),
    "inactive-substitute": lazy_gettext("Aizvietotājs %(key)s vairs nestrādā (nav aktīvs)."),
    "overlap": lazy_gettext(
        "%(key)s šajā laikā jau ir prombūtne (nr. %(absence)s); atceliet to vai izvēlieties "
        "citu laiku."
    ),
    "cycle": lazy_gettext(
        "Aizvietotājs tajā laikā arī ir prombūtnē, un aizvietotāji ved atpakaļ (%(chain)s): "
        "zvani ietu pa apli. Izvēlieties citu aizvietotāju."
    ),
    "unknown-staff": lazy_gettext("Nav darbinieka %(key)s."),
    "unknown-absence": lazy_gettext("Nav prombūtnes nr. %(absence)s."),
    "cancelled": lazy_gettext("Prombūtne nr. %(absence)s jau ir atcelta."),
}


def directory_refusal(exc: DirectoryError) -> str:
    template = _DIRECTORY.get(exc.code)
    if template is None:
        return str(exc)
    return str(template) % {k: str(v) for k, v in exc.params.items()}


def time_refusal(field: str, exc: LocalTimeError) -> str:
    return gettext("%(field)s: laiku nevar nolasīt (%(problem)s).", field=field, problem=str(exc))
