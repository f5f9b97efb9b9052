"""The directory from the command line: what works, and bad input refused in one line."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from callcenter.directory.models import Absence, Line, Staff
from tests.cli import Result, run

Cli = Callable[..., Result]


@pytest.fixture
def cli(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, env: dict[str, str]
) -> Cli:
    return lambda *args, **kw: run(capsys, monkeypatch, env, *args, **kw)


@pytest.fixture
def people(cli: Cli) -> None:
    assert (
        cli("staff", "add", "jberzins", "--name", "Jānis Bērziņš", "--phone", "20000001").code == 0
    )
    assert (
        cli(
            "staff",
            "add",
            "lozola",
            "--name",
            "Līga Ozola",
            "--phone",
            "+371 2000 0002",
            "--email",
            "liga@example.lv",
            "--position",
            "konsultante",
        ).code
        == 0
    )
    assert cli("staff", "add", "akalnins", "--name", "Andris", "--phone", "20000003").code == 0


def refused(result: Result, *words: str) -> None:
    assert result.code != 0
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("callcenter: ")
    for word in words:
        assert word in lines[0]


def test_staff_added_with_numbers_normalised_to_e164(people: None, cli: Cli) -> None:
    rows = cli("staff", "list", "--json").json()
    assert [(r["key"], r["phone"]) for r in rows] == [
        ("akalnins", "+37120000003"),
        ("jberzins", "+37120000001"),
        ("lozola", "+37120000002"),
    ]
    assert rows[2]["email"] == "liga@example.lv"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("staff", "add", "x1", "--name", "X", "--phone", "123"), ("phone",)),
        (("staff", "add", "Bad Key", "--name", "X", "--phone", "20000009"), ("key",)),
        (("staff", "add", "jberzins", "--name", "X", "--phone", "20000009"), ("already exists",)),
        (
            ("staff", "add", "xx", "--name", "X", "--phone", "20000009", "--email", "nope"),
            ("e-mail",),
        ),
        (("staff", "add", "xx", "--phone", "20000009"), ("--name",)),
        (("group", "add", "grp", "--name", "G", "--members", "nobody"), ("nobody",)),
        (
            ("group", "add", "gg", "--name", "G", "--members", "lozola", "--strategy", "random"),
            ("random",),
        ),
        (("line", "add", "+37167000001", "--target", "staff:ghost"), ("ghost",)),
        (("line", "add", "+37167000001", "--target", "lozola"), ("staff:KEY",)),
        (
            ("line", "add", "+37167000001", "--target", "staff:lozola", "--hours", "mon 9-5"),
            ("--hours",),
        ),
        (("line", "add", "67", "--target", "staff:lozola"), ("phone",)),
        (
            (
                "absence",
                "add",
                "jberzins",
                "--start",
                "2026-12-01",
                "--end",
                "2026-11-01",
                "--substitute",
                "lozola",
            ),
            ("after",),
        ),
        (
            (
                "absence",
                "add",
                "jberzins",
                "--start",
                "2026-12-01",
                "--end",
                "2026-12-05",
                "--substitute",
                "jberzins",
            ),
            ("themselves",),
        ),
        (
            (
                "absence",
                "add",
                "jberzins",
                "--start",
                "2026-12-01",
                "--end",
                "2026-12-05",
                "--substitute",
                "ghost",
            ),
            ("ghost",),
        ),
        (
            (
                "absence",
                "add",
                "jberzins",
                "--start",
                "someday",
                "--end",
                "2026-12-05",
                "--substitute",
                "lozola",
            ),
            ("--start",),
        ),
        (("absence", "cancel", "999"), ("999",)),
        (("absence", "cancel", "abc"), ("abc",)),
        (("hours", "set", "2026-12-31"), ("--closed",)),
        (("hours", "set", "31.12.2026", "--closed"), ("DAY",)),
        (("nonsense",), ("nonsense",)),
    ],
)
def test_bad_input_is_refused_in_one_line_and_writes_nothing(
    people: None, cli: Cli, session: Session, args: tuple[str, ...], words: tuple[str, ...]
) -> None:
    before = [session.scalar(select(func.count()).select_from(t)) for t in (Staff, Line, Absence)]
    refused(cli(*args), *words)
    after = [session.scalar(select(func.count()).select_from(t)) for t in (Staff, Line, Absence)]
    assert before == after


def test_inactive_substitute_and_overlapping_absences_are_refused(people: None, cli: Cli) -> None:
    assert cli("staff", "deactivate", "akalnins").code == 0
    refused(
        cli(
            "absence",
            "add",
            "jberzins",
            "--start",
            "2026-12-01T08:00",
            "--end",
            "2026-12-05T17:00",
            "--substitute",
            "akalnins",
        ),
        "not active",
    )
    assert (
        cli(
            "absence",
            "add",
            "jberzins",
            "--start",
            "2026-12-01T08:00",
            "--end",
            "2026-12-05T17:00",
            "--substitute",
            "lozola",
        ).code
        == 0
    )
    refused(
        cli(
            "absence",
            "add",
            "jberzins",
            "--start",
            "2026-12-05T16:00",
            "--end",
            "2026-12-09T17:00",
            "--substitute",
            "lozola",
        ),
        "already has absence",
    )
    # Back to back is not overlapping: the first ends as the second starts.
    assert (
        cli(
            "absence",
            "add",
            "jberzins",
            "--start",
            "2026-12-05T17:00",
            "--end",
            "2026-12-09T17:00",
            "--substitute",
            "lozola",
        ).code
        == 0
    )


def test_absence_local_time_is_riga_and_listed_with_offset(people: None, cli: Cli) -> None:
    assert (
        cli(
            "absence",
            "add",
            "jberzins",
            "--start",
            "2030-07-01T08:00",
            "--end",
            "2030-07-14T17:00+03:00",
            "--substitute",
            "lozola",
            "--note",
            "atvaļinājums",
        ).code
        == 0
    )
    rows = cli("absence", "list", "--json").json()
    assert rows[0]["start"] == "2030-07-01T08:00:00+03:00"
    assert rows[0]["end"] == "2030-07-14T17:00:00+03:00"
    assert rows[0]["substitute"] == "lozola"
    assert cli("absence", "cancel", str(rows[0]["id"])).code == 0
    assert cli("absence", "list", "--json").json() == []
    refused(cli("absence", "cancel", str(rows[0]["id"])), "already cancelled")


def test_local_times_the_dst_change_skips_or_repeats_are_refused(
    people: None, cli: Cli, session: Session
) -> None:
    def add(start: str) -> Result:
        return cli(
            "absence", "add", "jberzins", "--start", start, "--end", "2027-11-05T00:00",
            "--substitute", "lozola",
        )  # fmt: skip

    # Riga's clocks go from 03:00 to 04:00 on 28 March 2027: 03:30 never happens.
    refused(add("2027-03-28T03:30"), "--start", "does not exist")
    # On 31 October 2027 they go from 04:00 back to 03:00: 03:30 happens twice.
    refused(add("2027-10-31T03:30"), "--start", "happens twice", "+03:00", "+02:00")
    assert session.scalar(select(func.count()).select_from(Absence)) == 0
    # Either side of the change, and an ambiguous time with its offset, are fine.
    assert add("2027-10-31T03:30+02:00").code == 0
    rows = cli("absence", "list", "--json").json()
    assert rows[0]["start"] == "2027-10-31T03:30:00+02:00"


def test_groups_lines_and_hours_changes(people: None, cli: Cli) -> None:
    assert (
        cli(
            "group",
            "add",
            "abonenti",
            "--name",
            "Abonenti",
            "--members",
            "lozola,akalnins",
            "--strategy",
            "simultaneous",
        ).code
        == 0
    )
    assert cli("line", "add", "67000001", "--target", "group:abonenti").code == 0
    assert (
        cli(
            "line",
            "add",
            "+37167000002",
            "--target",
            "staff:jberzins",
            "--hours",
            "always",
            "--overflow",
            "abonenti",
        ).code
        == 0
    )
    lines = cli("line", "list", "--json").json()
    assert lines == [
        {
            "number": "+37167000001",
            "target": "group:abonenti",
            "hours": "mon-thu 08:00-17:00, fri 08:00-15:30",
            "record": True,
            "survey": False,
        },
        {
            "number": "+37167000002",
            "target": "staff:jberzins",
            "hours": "always",
            "record": True,
            "survey": False,
        },
    ]
    groups = cli("group", "list", "--json").json()
    assert groups[0]["members"] == ["lozola", "akalnins"]
    assert (
        cli("hours", "set", "2099-12-31", "--hours", "08:00-12:00", "--message", "Īsāk").code == 0
    )
    assert cli("hours", "set", "2099-12-30", "--closed").code == 0
    assert [c["hours"] for c in cli("hours", "list", "--json").json()] == ["closed", "08:00-12:00"]
    assert cli("hours", "remove", "2099-12-30").code == 0
    refused(cli("hours", "remove", "2099-12-30"), "no hours change")


def test_list_without_json_prints_a_table(people: None, cli: Cli) -> None:
    out = cli("staff", "list").out.splitlines()
    assert out[0].split() == ["key", "name", "phone", "position", "active"]
    assert len(out) == 4


def test_simulate_call_refuses_what_is_not_a_number_or_an_address(cli: Cli) -> None:
    refused(cli("simulate-call", "--to", "garbage"), "--to", "not a phone number")
    refused(cli("simulate-call", "--from", "not-a-number"), "--from")
    refused(cli("simulate-call", "--url", "ftp:/nowhere"), "--url", "http(s)")


def test_line_set_changes_target_hours_and_switches_and_says_what_changed(
    people: None, cli: Cli, session: Session
) -> None:
    added = cli("line", "add", "67000001", "--target", "staff:jberzins", "--record", "no")
    assert added.code == 0, added.err
    assert "record no, survey no" in added.out
    version = session.execute(text("SELECT version FROM directory_version")).scalar()
    changed = cli(
        "line", "set", "+37167000001", "--target", "staff:lozola", "--hours", "always",
        "--record", "yes", "--survey", "yes",
    )  # fmt: skip
    assert changed.code == 0, changed.err
    assert changed.out.splitlines() == [
        "line +37167000001: target: staff:jberzins -> staff:lozola",
        "line +37167000001: hours: mon-thu 08:00-17:00, fri 08:00-15:30 -> always",
        "line +37167000001: record: no -> yes",
        "line +37167000001: survey: no -> yes",
    ]
    # Like every directory change, it moves the version: the next call follows it.
    assert session.execute(text("SELECT version FROM directory_version")).scalar() > version
    row = cli("line", "list", "--json").json()[0]
    assert (row["target"], row["hours"], row["record"], row["survey"]) == (
        "staff:lozola", "always", True, True,
    )  # fmt: skip
    assert cli("line", "set", "+37167000001", "--survey", "yes").out.strip() == (
        "line +37167000001: nothing to change"
    )
    refused(cli("line", "set", "+37167000009", "--record", "no"), "no line +37167000009")
    refused(cli("line", "set", "+37167000001"), "at least one of")
    refused(cli("line", "set", "+37167000001", "--hours", "sometimes"), "--hours")
    refused(cli("line", "set", "+37167000001", "--target", "staff:nobody"), "nobody")


def test_absence_that_closes_a_cycle_of_substitutes_is_refused_unless_allowed(
    people: None, cli: Cli, session: Session
) -> None:
    week = ("--start", "2099-03-02T08:00", "--end", "2099-03-09T08:00")
    assert cli("absence", "add", "jberzins", *week, "--substitute", "lozola").code == 0
    # Overlapping in part is enough: for that while neither would take the other's calls.
    later = ("--start", "2099-03-08T08:00", "--end", "2099-03-12T08:00")
    refused(
        cli("absence", "add", "lozola", *later, "--substitute", "jberzins"),
        "cycle of substitutes (lozola -> jberzins -> lozola)",
        "--allow-cycle",
    )
    assert session.scalar(select(func.count()).select_from(Absence)) == 1
    # Not overlapping: no cycle.
    apart = ("--start", "2099-03-09T08:00", "--end", "2099-03-12T08:00")
    assert cli("absence", "add", "akalnins", *apart, "--substitute", "jberzins").code == 0
    allowed = cli("absence", "add", "lozola", *later, "--substitute", "jberzins", "--allow-cycle")
    assert allowed.code == 0, allowed.err
    assert "warning: a cycle of substitutes" in allowed.err
    assert "overflow group" in allowed.err
