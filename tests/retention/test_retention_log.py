"""The chain stays one chain whether entries are appended one at a time or a batch at a time."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from callcenter.audit import log as retention_log
from callcenter.audit.models import RetentionEntry
from callcenter.db import transaction
from callcenter.runtime import Runtime
from tests.retention.conftest import entries

AT = datetime(2026, 4, 15, 8, 30, tzinfo=UTC)


def test_single_and_batched_appends_form_one_unbroken_chain(rt: Runtime) -> None:
    with transaction(rt.sessions) as session:
        retention_log.append(session, "sweep_started", now=AT, actor="retention-sweep")
        seqs = retention_log.append_many(
            session,
            [
                retention_log.NewEntry("deleted", AT + timedelta(seconds=n), f"RE{n:032x}")
                for n in range(3)
            ],
        )
        retention_log.append(session, "sweep_finished", now=AT, details={"deleted": 3})
    assert seqs == [2, 3, 4]
    chain = entries(rt.sessions)
    assert [e.seq for e in chain] == [1, 2, 3, 4, 5]
    assert list(retention_log.check_chain(chain)) == []
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(chain))


def test_a_batch_with_an_unknown_event_writes_nothing(rt: Runtime) -> None:
    batch = [retention_log.NewEntry("deleted", AT), retention_log.NewEntry("erased", AT)]
    with (
        pytest.raises(ValueError, match="unknown retention event"),
        transaction(rt.sessions) as session,
    ):
        retention_log.append_many(session, batch)
    assert entries(rt.sessions) == []


def test_streaming_reads_every_entry_in_order_a_page_at_a_time(rt: Runtime) -> None:
    with transaction(rt.sessions) as session:
        retention_log.append_many(
            session,
            [retention_log.NewEntry("sweep_started", AT + timedelta(minutes=n)) for n in range(7)],
        )
    with rt.sessions() as session:
        streamed = list(retention_log.iter_entries(session, page_size=3))
        assert [e.seq for e in streamed] == list(range(1, 8))
        assert list(retention_log.check_chain(streamed)) == []
        later = list(
            retention_log.iter_entries(session, since=AT + timedelta(minutes=5), page_size=2)
        )
        assert [e.seq for e in later] == [6, 7]


def test_an_append_from_a_clock_behind_the_log_takes_the_last_entrys_time(rt: Runtime) -> None:
    with transaction(rt.sessions) as session:
        retention_log.append(session, "sweep_started", now=AT)
        # Another host whose clock is two seconds behind.
        retention_log.append(session, "sweep_finished", now=AT - timedelta(seconds=2))
        retention_log.append_many(
            session, [retention_log.NewEntry("deleted", AT - timedelta(seconds=1), "RE" + "1" * 32)]
        )
    chain = entries(rt.sessions)
    assert [e.at for e in chain] == [AT, AT, AT]
    assert list(retention_log.check_chain(chain)) == []


def test_a_chain_whose_times_run_backwards_is_reported(rt: Runtime) -> None:
    # A chain rewritten with its hashes recomputed hides an edit from the hash check alone; the
    # times still tell. Built by hand, since append never writes such a chain.
    prev = retention_log.GENESIS_HASH
    chain = []
    for seq, at in enumerate([AT, AT + timedelta(minutes=5), AT + timedelta(minutes=1)], 1):
        body = retention_log.canonical(
            seq=seq, at=at, event="stored", recording_sid=None, actor="ingest", details={}
        )
        digest = retention_log.entry_hash(prev, body)
        chain.append(
            RetentionEntry(
                seq=seq,
                at=at,
                event="stored",
                recording_sid=None,
                actor="ingest",
                details={},
                prev_hash=prev,
                hash=digest,
            )
        )
        prev = digest
    problems = list(retention_log.check_chain(chain))
    assert [(p.seq, "times run backwards" in p.problem) for p in problems] == [(3, True)]
