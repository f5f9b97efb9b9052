"""The compliance pages: the log with its filters, exports and the chain's state; verification
run from the page with its history and warnings; what is due; holds; the access trail; finding
a recording and listening to it only with a stated reason."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from callcenter.audit import notes
from callcenter.audit.models import AuditNote
from callcenter.recordings import verification
from callcenter.runtime import Runtime
from tests.calls.conftest import DIRECT, Clock
from tests.cli import run as run_cli
from tests.console.conftest import AUDIO, AddRecording, SignedIn, csrf_token


def form_post(client: FlaskClient, path: str, data: dict, page: str) -> object:
    return client.post(path, data={**data, "csrf_token": csrf_token(client, page)})


def text(response: object) -> str:
    return response.get_data(as_text=True)  # type: ignore[attr-defined]


def test_the_log_newest_first_filtered_with_hashes_and_the_chain_state(
    signed_in: SignedIn,
    add_recording: AddRecording,
    sessions: sessionmaker[Session],
    runtime: Runtime,
    clock: Clock,
) -> None:
    first = add_recording(datetime(2026, 1, 5, 9, tzinfo=UTC))
    second = add_recording(datetime(2026, 2, 5, 9, tzinfo=UTC))
    client = signed_in("compliance")
    page = text(client.get("/console/retention"))
    assert page.index(second) < page.index(first)  # newest first
    assert "Žurnāls vēl nav ne reizi pārbaudīts." in page
    head = re.search(r'<code class="hash" id="head">(\d+:[0-9a-f]{64})</code>', page)
    assert head and head.group(1).startswith("2:")
    assert re.search(r"<code class=\"hash\">[0-9a-f]{64}</code>", page)
    only = text(client.get(f"/console/retention?recording={first}"))
    assert first in only and second not in only
    span = text(client.get("/console/retention?since=2026-02-01&until=2026-02-28"))
    assert second in span and first not in span
    assert "Nav ierakstu." in text(client.get("/console/retention?event=deleted"))
    assert client.get("/console/retention?event=nonsense").status_code == 400
    assert client.get("/console/retention?since=yesterday").status_code == 400
    # After a verification the state shows it; failed, it warns; two days old, it warns.
    with sessions.begin() as session:
        verification.run(session, runtime.storage, now=clock.now, by="audit")
    page = text(client.get("/console/retention"))
    assert "Pēdējā pārbaude: kārtībā" in page and "vecāka par divām dienām" not in page
    clock.set(clock.now + timedelta(days=2, seconds=1))
    assert "vecāka par divām dienām" in text(client.get("/console/retention"))


def test_the_log_exports_are_the_command_lines_files(
    signed_in: SignedIn,
    add_recording: AddRecording,
    env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    add_recording()
    add_recording()
    client = signed_in("compliance")
    for fmt in ("csv", "json"):
        response = client.get(f"/console/retention/log.{fmt}")
        assert response.status_code == 200
        assert "attachment" in response.headers["Content-Disposition"]
        cli = run_cli(capsys, monkeypatch, env, "retention", "log", "--format", fmt)
        assert cli.code == 0, cli.err
        assert response.get_data(as_text=True) == cli.out
    rows = list(
        csv.DictReader(io.StringIO(client.get("/console/retention/log.csv").get_data(as_text=True)))
    )
    assert [r["event"] for r in rows] == ["stored", "stored"]
    entries = json.loads(client.get("/console/retention/log.json").get_data(as_text=True))
    assert len(entries) == 2 and entries[0]["seq"] == 1


def test_verification_from_the_page_with_problems_in_words_history_and_an_outage(
    signed_in: SignedIn, add_recording: AddRecording, runtime: Runtime
) -> None:
    sid = add_recording()
    client = signed_in("compliance")
    page = "/console/retention/verify"
    response = form_post(client, page, {"scope": "sample", "sample": "5"}, page)
    assert response.status_code == 200
    assert "Kārtībā: 1 žurnāla ieraksti ķēdē" in text(response)
    root = Path(runtime.settings.recordings_url.removeprefix("file:"))
    [found] = list(root.rglob(f"{sid}.wav"))
    found.write_bytes(b"tampered")
    response = form_post(client, page, {"scope": "all"}, page)
    body = text(response)
    assert "Atrastas 1 problēmas" in body
    assert f"storage: {sid}: object checksum differs from the logged SHA-256" in body
    assert "Pēdējā pārbaude neizdevās" in body
    # The history: both runs, who ran them, the sample and the whole.
    history = text(client.get(page))
    assert history.count("<td>audit</td>") == 2
    assert "izlase 5" in history and "viss" in history
    assert form_post(client, page, {"scope": "sample", "sample": "x"}, page).status_code == 422
    shutil.rmtree(root)
    response = form_post(client, page, {"scope": "all"}, page)
    assert response.status_code == 503
    assert "Glabātuve nav pieejama" in text(response) and "RECORDINGS_URL" in text(response)
    assert text(client.get(page)).count("<td>audit</td>") == 2  # nothing judged, nothing kept


def test_what_is_due_shows_when_and_those_held(
    signed_in: SignedIn, add_recording: AddRecording
) -> None:
    soon = add_recording(datetime(2025, 12, 5, 9, tzinfo=UTC))  # due 5 March
    held = add_recording(datetime(2025, 12, 6, 9, tzinfo=UTC), on_hold=True)  # due 6 March
    later = add_recording(datetime(2026, 2, 10, 9, tzinfo=UTC))  # due 10 May
    client = signed_in("compliance")
    page = text(client.get("/console/retention/due"))
    assert soon in page and held in page and later not in page
    assert "2026-03-05 11:00" in page  # local time
    assert re.search(rf'data-recording-sid="{held}".*?aizturēts', page, re.S)
    assert later in text(client.get("/console/retention/due?days=90"))
    assert client.get("/console/retention/due?days=x").status_code == 400


def test_holds_need_a_reason_and_show_who_and_when(
    signed_in: SignedIn, add_recording: AddRecording
) -> None:
    sid = add_recording()
    client = signed_in("compliance")
    page = "/console/retention/holds"
    response = form_post(client, page, {"recording_sid": sid, "reason": " "}, page)
    assert response.status_code == 422 and "Norādiet iemeslu" in text(response)
    response = form_post(client, page, {"recording_sid": "RE" + "1" * 32, "reason": "x"}, page)
    assert response.status_code == 422 and "no recording" in text(response)
    response = form_post(client, page, {"recording_sid": sid, "reason": "lieta 2026/14"}, page)
    assert response.status_code == 302
    listed = text(client.get(page))
    assert "Aizturēja audit, 2026-03-02 10:00" in listed and "lieta 2026/14" in listed
    release = f"/console/retention/holds/{sid}/release"
    assert form_post(client, release, {"reason": ""}, page).status_code == 422
    assert form_post(client, release, {"reason": "lieta slēgta"}, page).status_code == 302
    assert "Nav aizturētu ierakstu." in text(client.get(page))


def test_finding_a_recording_by_sid_call_or_day_and_line(
    signed_in: SignedIn, add_recording: AddRecording
) -> None:
    sid = add_recording(datetime(2026, 2, 10, 9, tzinfo=UTC), line=DIRECT)
    other = add_recording(datetime(2026, 2, 11, 9, tzinfo=UTC), line="+37167000001")
    client = signed_in("supervisor")
    page = text(
        client.get("/console/recordings", query_string={"day": "2026-02-10", "line": DIRECT})
    )
    assert sid in page and other not in page
    assert other in text(client.get(f"/console/recordings?sid={other}"))
    assert "Nekas netika atrasts." in text(client.get("/console/recordings?day=2026-02-12"))


def test_listening_needs_a_reason_and_the_trail_shows_it(
    signed_in: SignedIn,
    add_recording: AddRecording,
    sessions: sessionmaker[Session],
    clock: Clock,
) -> None:
    sid = add_recording()
    supervisor = signed_in("supervisor")
    page = f"/console/recordings/{sid}"
    ask = f"/console/recordings/{sid}/access"
    response = form_post(supervisor, ask, {"reason": "", "purpose": "listen"}, page)
    assert response.status_code == 422 and "<audio" not in text(response)
    response = form_post(
        supervisor, ask, {"reason": "kvalitātes pārbaude", "purpose": "listen"}, page
    )
    body = text(response)
    match = re.search(r'<audio id="player" controls preload="metadata" src="([^"]+)">', body)
    assert match, body
    audio = supervisor.get(match.group(1).replace("&amp;", "&"))
    assert audio.status_code == 200 and audio.data == AUDIO
    response = form_post(supervisor, ask, {"reason": "lietai 7", "purpose": "download"}, page)
    assert re.search(r'<a id="download" href="[^"]+" download>', text(response))
    trail = text(signed_in("compliance").get("/console/retention/access"))
    assert trail.index("lietai 7") < trail.index("kvalitātes pārbaude")  # newest first
    assert "boss" in trail and "lejupielāde" in trail and "klausīšanās" in trail
    # A reason redacted on a lawful request is shown as such; the CSV says so too.
    with sessions.begin() as session:
        note = session.query(AuditNote).filter_by(text="kvalitātes pārbaude").one()
        notes.redact(session, note.id, by="audit", why="lawful request 3", now=clock.now)
    compliance = signed_in("compliance")
    assert "dzēsts pēc pieprasījuma" in text(compliance.get("/console/retention/access?user=boss"))
    assert "Nav piekļuvju." in text(compliance.get("/console/retention/access?user=audit"))
    exported = compliance.get(f"/console/retention/access.csv?recording={sid}").get_data(
        as_text=True
    )
    rows = list(csv.DictReader(io.StringIO(exported)))
    assert [(r["user"], r["purpose"], r["reason"], r["recording"]) for r in rows] == [
        ("boss", "download", "lietai 7", "kept"),
        ("boss", "listen", "(redacted)", "kept"),
    ]


def test_a_deleted_recording_is_shown_as_deleted_and_cannot_be_asked_for(
    signed_in: SignedIn, add_recording: AddRecording
) -> None:
    gone = add_recording(status="deleted")
    held = add_recording(on_hold=True)
    client = signed_in("compliance")
    page = text(client.get(f"/console/recordings/{gone}"))
    assert "Ieraksts ir dzēsts" in page and 'id="access-form"' not in page
    response = form_post(
        client,
        f"/console/recordings/{gone}/access",
        {"reason": "x", "purpose": "listen"},
        f"/console/recordings/{held}",
    )
    assert response.status_code == 422 and "was deleted" in text(response)
    page = text(client.get(f"/console/recordings/{held}"))
    assert "aizturēts" in page and 'id="access-form"' in page
