"""The call report, checked against a day whose every call is known."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import date, datetime

import pytest
from sqlalchemy.orm import Session

from callcenter.calls import report
from tests.calls.conftest import (
    ANDRIS,
    CALLER,
    DEPARTMENT,
    DIRECT,
    LIGA,
    OTHER_CALLER,
    RIGA,
    Clock,
    Twilio,
    sid,
)
from tests.cli import run

pytestmark = pytest.mark.usefixtures("staffed")

Phone = Callable[..., Twilio]
THIRD_CALLER = "+37129444444"
FOURTH_CALLER = "+37129555555"


def answered_after(call: Twilio, clock: Clock, ring: int) -> None:
    call.start()
    leg = sid()
    call.status(call.leg_form(leg, ANDRIS, "ringing"))
    clock.tick(ring)
    call.status(call.leg_form(leg, ANDRIS, "in-progress"))
    clock.tick(60)
    call.status(call.leg_form(leg, ANDRIS, "completed", CallDuration="60"))
    call.dial(call.dial_form("completed", leg, 60))
    call.status(call.parent_form("completed"))
    clock.tick(600)


@pytest.fixture
def known_days(phone: Phone, clock: Clock) -> None:
    """Monday: two answered, one missed, one answered by a substitute, one abandoned.
    Tuesday: one answered."""
    answered_after(phone(), clock, 8)
    answered_after(phone(), clock, 20)
    missed = phone()
    missed.start()
    leg = sid()
    missed.status(missed.leg_form(leg, ANDRIS, "ringing"))
    clock.tick(20)
    missed.status(missed.leg_form(leg, ANDRIS, "no-answer"))
    missed.dial(missed.dial_form("no-answer", leg))
    missed.status(missed.parent_form("completed"))
    clock.tick(600)

    department = phone(caller=THIRD_CALLER, line=DEPARTMENT)
    department.start()
    first, second = sid(), sid()
    department.status(department.leg_form(first, ANDRIS, "ringing"))
    clock.tick(20)
    department.status(department.leg_form(first, ANDRIS, "no-answer"))
    department.dial(department.dial_form("no-answer", first))
    department.status(department.leg_form(second, LIGA, "ringing"))
    clock.tick(5)
    department.status(department.leg_form(second, LIGA, "in-progress"))
    department.accept(second, LIGA)
    clock.tick(40)
    department.dial(department.dial_form("completed", second, 35))
    department.status(department.parent_form("completed"))
    clock.tick(600)

    abandoned = phone(caller=OTHER_CALLER)
    abandoned.start()
    clock.tick(3)
    abandoned.status(abandoned.parent_form("completed"))

    clock.set(datetime(2026, 3, 3, 11, 0, tzinfo=RIGA))
    answered_after(phone(caller=FOURTH_CALLER), clock, 10)


def staff_rows(data: dict) -> dict[tuple[str, str], dict]:
    return {(row["day"], row["staff"]): row for row in data["staff"]}


def line_rows(data: dict) -> dict[tuple[str, str], dict]:
    return {(row["day"], row["line"]): row for row in data["lines"]}


def test_report_figures_for_a_known_scenario(known_days: None, session: Session) -> None:
    result = report.build(
        session,
        start=date(2026, 3, 2),
        end=date(2026, 3, 3),
        zone=RIGA,
        now=datetime(2026, 3, 5, 9, 0, tzinfo=RIGA),
    ).to_json()
    staff = staff_rows(result)
    assert set(staff) == {
        ("2026-03-02", "akalnins"),
        ("2026-03-02", "lozola"),
        ("2026-03-03", "akalnins"),
    }
    monday = staff[("2026-03-02", "akalnins")]
    assert {k: monday[k] for k in ("offered", "answered", "missed", "answered_as_substitute")} == {
        "offered": 4,
        "answered": 2,
        "missed": 2,
        "answered_as_substitute": 0,
    }
    assert monday["median_ring_seconds"] == 14
    assert monday["answer_rate"] == 0.5
    liga = staff[("2026-03-02", "lozola")]
    assert (liga["offered"], liga["answered"], liga["answered_as_substitute"]) == (1, 1, 1)
    assert (liga["median_ring_seconds"], liga["answer_rate"], liga["missed"]) == (25, 1.0, 0)
    tuesday = staff[("2026-03-03", "akalnins")]
    assert (tuesday["offered"], tuesday["answered"], tuesday["median_ring_seconds"]) == (1, 1, 10)

    lines = line_rows(result)
    direct = lines[("2026-03-02", DIRECT)]
    assert {k: direct[k] for k in report.LINE_COLUMNS[2:]} == {
        "calls": 4,
        "answered": 2,
        "missed": 1,
        "abandoned": 1,
        "after_hours": 0,
        "callbacks_requested": 2,
        "callbacks_open": 2,
        "callbacks_overdue": 2,
        "surveys": 0,
        "survey_mean": None,
    }
    assert lines[("2026-03-02", DEPARTMENT)]["answered"] == 1
    assert lines[("2026-03-03", DIRECT)]["calls"] == 1
    # Before the due time nothing is overdue; a single day leaves Tuesday out.
    early = report.build(
        session,
        start=date(2026, 3, 2),
        end=date(2026, 3, 2),
        zone=RIGA,
        now=datetime(2026, 3, 2, 18, 0, tzinfo=RIGA),
    ).to_json()
    assert line_rows(early)[("2026-03-02", DIRECT)]["callbacks_overdue"] == 0
    assert {row["day"] for row in early["staff"]} == {"2026-03-02"}
    assert CALLER not in str(result)


def test_report_command_formats(
    known_days: None,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
) -> None:
    args = ("report", "--from", "2026-03-02", "--to", "2026-03-03")
    as_json = run(capsys, monkeypatch, env, *args, "--format", "json")
    assert as_json.code == 0, as_json.err
    assert staff_rows(as_json.json())[("2026-03-02", "akalnins")]["answered"] == 2

    as_csv = run(capsys, monkeypatch, env, *args, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.out)))
    assert {row["section"] for row in rows} == {"staff", "line"}
    liga = next(r for r in rows if r["section"] == "staff" and r["staff"] == "lozola")
    assert (liga["answered_as_substitute"], liga["answer_rate"]) == ("1", "1.0")

    text = run(capsys, monkeypatch, env, *args)
    assert text.code == 0
    assert "akalnins" in text.out and DIRECT in text.out


@pytest.mark.parametrize(
    ("dates", "message"),
    [
        (("--from", "2026-03-03", "--to", "2026-03-02"), "before --from"),
        (("--from", "2 March", "--to", "2026-03-02"), "--from"),
        (
            (
                "--from",
                "2026-03-02",
            ),
            "Missing option",
        ),
    ],
)
def test_report_refuses_bad_dates(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    dates: tuple[str, ...],
    message: str,
) -> None:
    result = run(capsys, monkeypatch, env, "report", *dates)
    assert result.code != 0
    assert message in result.err
    assert len(result.err.strip().splitlines()) == 1
