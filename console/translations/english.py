"""The English catalogue's source: Latvian message -> English. `python -m console.translations.english`
writes en/LC_MESSAGES/messages.po from messages.pot and compiles messages.mo (see README)."""

from __future__ import annotations

from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

ENGLISH = {
    "Veidlapa ir novecojusi. Atjaunojiet lapu un mēģiniet vēlreiz.": "The form has expired. Reload the page and try again.",
    "Šādas lapas nav.": "There is no such page.",
    "Jūsu lomai šī lapa nav pieejama.": "Your role may not use this page.",
    "Radās kļūda. Tā ir pierakstīta; mēģiniet vēlreiz vēlāk.": "Something went wrong. It has been logged; please try again later.",
    "Beigām jābūt vēlāk par sākumu.": "The end must be after the start.",
    "Neviens nevar aizvietot pats sevi.": "Nobody can be their own substitute.",
    "Aizvietotājs %(key)s vairs nestrādā (nav aktīvs).": "The substitute %(key)s is no longer active.",
    "%(key)s šajā laikā jau ir prombūtne (nr. %(absence)s); atceliet to vai izvēlieties citu laiku.": "%(key)s already has an absence then (no. %(absence)s); cancel it or choose another time.",
    "Aizvietotājs tajā laikā arī ir prombūtnē, un aizvietotāji ved atpakaļ (%(chain)s): zvani ietu pa apli. Izvēlieties citu aizvietotāju.": "The substitute is away then too, and their substitutes lead back (%(chain)s): calls would go round in a circle. Choose another substitute.",
    "Nav darbinieka %(key)s.": "There is no staff member %(key)s.",
    "Nav prombūtnes nr. %(absence)s.": "There is no absence no. %(absence)s.",
    "Prombūtne nr. %(absence)s jau ir atcelta.": "Absence no. %(absence)s is already cancelled.",
    "%(field)s: laiku nevar nolasīt (%(problem)s).": "%(field)s: the time cannot be read (%(problem)s).",
    "Pārāk daudz neveiksmīgu mēģinājumu. Mēģiniet vēlreiz pēc %(time)s.": "Too many failed attempts. Try again after %(time)s.",
    "Nepareizs lietotājvārds vai parole.": "Wrong username or password.",
    "Tādas prombūtnes nav.": "There is no such absence.",
    "Sākums": "Start",
    "Beigas": "End",
    "%(field)s: jānorāda.": "%(field)s: required.",
    "Izvēlieties aizvietotāju.": "Choose a substitute.",
    "Prombūtne saglabāta.": "Absence saved.",
    "Prombūtne atcelta.": "Absence cancelled.",
    "%(name)s: jābūt veselam skaitlim.": "%(name)s: must be a whole number.",
    "Nezināms iznākums.": "Unknown outcome.",
    "Datums jāraksta kā 2026-03-02.": "Write the date like 2026-03-02.",
    "Tāda atzvanīšanas pieprasījuma nav.": "There is no such callback request.",
    "Statuss ir open vai done.": "The status is open or done.",
    "Šis pieprasījums jau ir izpildīts.": "This request is already done.",
    "Atzīmēts kā izpildīts.": "Marked as done.",
    "Atbildēti": "Answered",
    "Neatbildēti": "Missed",
    "Atbildēja aizvietotājs": "Answered by a substitute",
    "Zvani dienā, 30 dienas": "Calls per day, 30 days",
    "Saglabāts.": "Saved.",
    "Lietotājs pievienots.": "User added.",
    "Lietotājs atslēgts.": "User deactivated.",
    "Prombūtnes": "Absences",
    "Jauna prombūtne": "New absence",
    "Kurš būs prombūtnē": "Who will be away",
    "Sākums (vietējais laiks)": "Start (local time)",
    "Beigas (vietējais laiks)": "End (local time)",
    "Aizvietotājs": "Substitute",
    "Piezīme": "Note",
    "Saglabāt": "Save",
    "Spēkā esošās un nākamās": "In force and to come",
    "Nr.": "No.",
    "Kurš": "Who",
    "No": "From",
    "Līdz": "Until",
    "Atcelt": "Cancel",
    "Nav prombūtņu.": "No absences.",
    "Zvanu centrs": "Call centre",
    "Šodien": "Today",
    "Zvani": "Calls",
    "Atzvanīšana": "Callbacks",
    "Grafiks": "Chart",
    "Darbinieki un laiki": "Directory and hours",
    "Lietotāji": "Users",
    "Iziet": "Sign out",
    "termiņš": "due",
    "Izpildīts": "Done",
    "izpildīts": "done",
    "Rādīt izpildītos": "Show done",
    "Rādīt atvērtos": "Show open",
    "Nokavēti": "Overdue",
    "Nav.": "None.",
    "Jāatzvana": "Due",
    "Diena": "Day",
    "Atbildēja": "Answered by",
    "jebkurš": "any",
    "Iznākums": "Outcome",
    "Rādīt": "Show",
    "Atrasti %(n)s zvani.": "%(n)s calls found.",
    "Zvanītājs": "Caller",
    "Līnija": "Line",
    "Kam": "For",
    "aizvietotājs": "substitute",
    "Nav zvanu.": "No calls.",
    "Iepriekšējā": "Previous",
    "Nākamā": "Next",
    "Zvani dienā, pēdējās 30 dienas": "Calls per day, the last 30 days",
    "Zvani dienā: atbildēti, neatbildēti, atbildēja aizvietotājs": "Calls per day: answered, missed, answered by a substitute",
    "Kopā": "Total",
    "Darbinieki": "Staff",
    "Atslēga": "Key",
    "Vārds": "Name",
    "Tālrunis": "Phone",
    "Amats": "Position",
    "Aktīvs": "Active",
    "jā": "yes",
    "nē": "no",
    "Atslēgt": "Deactivate",
    "Atslēga (piem. jberzins)": "Key (e.g. jberzins)",
    "Pievienot darbinieku": "Add staff member",
    "Grupas": "Groups",
    "Nosaukums": "Name",
    "Dalībnieki (atslēgas ar komatiem, zvanīšanas secībā)": "Members (keys separated by commas, in ringing order)",
    "Kā zvana": "How it rings",
    "Pievienot grupu": "Add group",
    "Līnijas": "Lines",
    "Numurs": "Number",
    "Kam zvana": "Rings",
    "Darba laiks": "Hours",
    "Pārpildes grupa": "Overflow group",
    "Kam zvana (staff:ATSLĒGA vai group:ATSLĒGA)": "Rings (staff:KEY or group:KEY)",
    "Darba laiks (piem. mon-thu 08:00-17:00, fri 08:00-15:30, vai always)": "Hours (e.g. mon-thu 08:00-17:00, fri 08:00-15:30, or always)",
    "Pievienot līniju": "Add line",
    "Darba laika izmaiņas": "Changes of hours",
    "slēgts": "closed",
    "Noņemt": "Remove",
    "Datums": "Date",
    "Laiks (piem. 09:00-13:00; tukšs: slēgts)": "Hours (e.g. 09:00-13:00; empty: closed)",
    "Ko dzirdēs zvanītāji": "What callers will hear",
    "Saglabāt izmaiņas": "Save the change",
    "Uz sākumu": "To the start page",
    "Sveiki, %(name)s": "Hello, %(name)s",
    "Ierakstu glabāšanas lapas vēl top.": "The recording retention pages are still being built.",
    "Pieteikties": "Sign in",
    "Lietotājvārds": "Username",
    "Parole": "Password",
    "atvērta vienmēr": "always open",
    "atvērta līdz %(time)s": "open until %(time)s",
    "slēgta": "closed",
    "atvērsies %(time)s": "opens %(time)s",
    "Nav nevienas līnijas.": "No lines.",
    "Nākamās izmaiņas darba laikā:": "Next change of hours:",
    "nav": "none",
    "Prombūtnē un aizvieto": "Away, and who covers",
    "aizvieto": "covered by",
    "Neviens nav prombūtnē.": "Nobody is away.",
    "Zvani šodien": "Calls today",
    "Nokavēti: %(n)s; jāatzvana šodien: %(m)s.": "Overdue: %(n)s; due today: %(m)s.",
    "Uz sarakstu": "To the list",
    "Loma": "Role",
    "Darbinieks": "Staff member",
    "Jauns lietotājs": "New user",
    "Darbinieks (lomai staff)": "Staff member (for the staff role)",
    "Parole (vismaz 10 rakstzīmes)": "Password (at least 10 characters)",
    "Pievienot": "Add",
}

HERE = Path(__file__).parent


def build() -> list[str]:
    """Write the English .po and .mo from messages.pot; return the messages left untranslated."""
    with open(HERE / "messages.pot", "rb") as source:
        catalog = read_po(source, locale="en")
    missing = []
    for message in catalog:
        if message.id:
            message.string = ENGLISH.get(str(message.id), "")
            if not message.string:
                missing.append(str(message.id))
    target = HERE / "en" / "LC_MESSAGES"
    target.mkdir(parents=True, exist_ok=True)
    with open(target / "messages.po", "wb") as po:
        write_po(po, catalog, omit_header=False, no_location=True)
    with open(target / "messages.mo", "wb") as mo:
        write_mo(mo, catalog)
    return missing


if __name__ == "__main__":
    left = build()
    for message in left:
        print(f"untranslated: {message}")
    raise SystemExit(1 if left else 0)
