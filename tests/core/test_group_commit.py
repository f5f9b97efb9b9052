"""Writes of many threads committed together: each answered after its commit, one bad write
failing only its own thread, a queued write leaving the queue when its deadline passes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import Engine, text

from callcenter.db import DatabaseTimeout, GroupCommit, PinnedConnections, Together, deadline


class Ledger:
    """A fake transaction: what was committed, and how many commits carried it."""

    def __init__(self, hold: float = 0.0) -> None:
        self.committed: list[object] = []
        self.commits = 0
        self.hold = hold
        self.lock = threading.Lock()

    @contextmanager
    def begin(self) -> Iterator[list[object]]:
        pending: list[object] = []
        yield pending
        time.sleep(self.hold)  # a commit that takes a while, so that others queue behind it
        with self.lock:
            self.committed.extend(pending)
            self.commits += 1


def run_all(write: Callable[[int], object], count: int) -> list[object]:
    """`write(i)` from `count` threads released together; each one's result or error."""
    results: list[object] = [None] * count
    start = threading.Barrier(count)

    def one(index: int) -> None:
        start.wait()
        try:
            results[index] = write(index)
        except Exception as exc:
            results[index] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    return results


def run_together(writes: GroupCommit[list[object]], works: list, *, seconds: float | None = None):
    def write(index: int) -> object:
        if seconds is None:
            return writes.run(works[index])
        with deadline(seconds):
            return writes.run(works[index])

    return run_all(write, len(works))


def appender(value: int):
    def work(pending: list[object]) -> int:
        pending.append(value)
        return value * 10

    return work


def test_concurrent_writes_share_commits_and_each_gets_its_own_result() -> None:
    ledger = Ledger(hold=0.02)
    writes = GroupCommit(ledger.begin)
    results = run_together(writes, [appender(i) for i in range(16)])
    assert results == [i * 10 for i in range(16)]
    assert sorted(ledger.committed) == list(range(16))  # type: ignore[type-var]
    # 16 threads at once, each commit 20 ms: they queued and shared commits.
    assert ledger.commits < 16


def test_a_result_is_handed_over_only_after_its_commit() -> None:
    ledger = Ledger(hold=0.05)
    writes = GroupCommit(ledger.begin)
    seen: list[bool] = []

    def work(pending: list[object]) -> str:
        pending.append("row")
        return "done"

    assert writes.run(work) == "done"
    seen.append("row" in ledger.committed)
    assert seen == [True]


def test_a_write_that_raises_fails_alone_and_the_others_are_committed() -> None:
    ledger = Ledger(hold=0.02)
    writes = GroupCommit(ledger.begin)

    def bad(pending: list[object]) -> None:
        pending.append("bad")
        raise ValueError("this write is wrong")

    works = [appender(i) for i in range(8)]
    works[3] = bad
    results = run_together(writes, works)
    assert isinstance(results[3], ValueError)
    assert [r for i, r in enumerate(results) if i != 3] == [i * 10 for i in range(8) if i != 3]
    # The failed write's part was rolled back with its batch: never committed.
    assert "bad" not in ledger.committed
    assert sorted(ledger.committed) == [i for i in range(8) if i != 3]  # type: ignore[type-var]


def test_a_database_failure_reaches_every_write_of_the_batch_once() -> None:
    calls: list[int] = []

    @contextmanager
    def begin() -> Iterator[list[object]]:
        calls.append(1)
        time.sleep(0.02)
        raise DatabaseTimeout("the database did not answer")
        yield []  # pragma: no cover

    writes = GroupCommit(begin)
    results = run_together(writes, [appender(i) for i in range(8)])
    assert all(isinstance(r, DatabaseTimeout) for r in results)
    # Not tried again write by write: one attempt per batch.
    assert len(calls) < 8


def test_writes_queued_while_the_leader_waits_for_its_transaction_join_its_commit() -> None:
    # The leader waits for its transaction (SQLite's write lock, held by another process);
    # the writes that queue meanwhile are carried by that same transaction when it begins.
    ledger = Ledger()
    entered, gate = threading.Event(), threading.Event()

    @contextmanager
    def begin() -> Iterator[list[object]]:
        entered.set()
        assert gate.wait(5)
        with ledger.begin() as pending:
            yield pending

    writes = GroupCommit(begin)
    results: dict[int, object] = {}
    leader = threading.Thread(target=lambda: results.update({0: writes.run(appender(0))}))
    leader.start()
    assert entered.wait(5)
    others = [
        threading.Thread(target=lambda i=i: results.update({i: writes.run(appender(i))}))
        for i in range(1, 6)
    ]
    for thread in others:
        thread.start()
    while len(writes._queue) < 5:  # all five queued behind the waiting leader
        time.sleep(0.001)
    gate.set()
    for thread in [leader, *others]:
        thread.join(5)
    assert results == {i: i * 10 for i in range(6)}
    assert sorted(ledger.committed) == list(range(6))  # type: ignore[type-var]
    assert ledger.commits == 1


def test_a_write_queued_while_a_batch_fails_on_the_database_gets_its_own_try() -> None:
    # The batch had begun and was taken when the database failed it: a write that queued
    # afterwards was never part of it, and is committed by the next leader.
    ledger = Ledger()
    queued = threading.Event()

    def fails_once_another_queued(pending: list[object]) -> None:
        assert queued.wait(5)
        raise DatabaseTimeout("the database did not answer")

    writes = GroupCommit(ledger.begin)
    results: dict[str, object] = {}

    def first() -> None:
        try:
            writes.run(fails_once_another_queued)
        except DatabaseTimeout as exc:
            results["first"] = exc

    leader = threading.Thread(target=first)
    leader.start()
    while not writes._leading:
        time.sleep(0.001)
    later = threading.Thread(target=lambda: results.update({"later": writes.run(appender(7))}))
    later.start()
    while len(writes._queue) < 1:
        time.sleep(0.001)
    queued.set()
    for thread in (leader, later):
        thread.join(5)
    assert isinstance(results["first"], DatabaseTimeout)
    assert results["later"] == 70
    assert ledger.committed == [7]


def test_a_queued_write_leaves_the_queue_when_its_deadline_passes() -> None:
    gate = threading.Event()

    @contextmanager
    def begin() -> Iterator[list[object]]:
        gate.wait(5)  # the first commit hangs until released
        yield []

    writes = GroupCommit(begin)
    first = threading.Thread(target=writes.run, args=(lambda pending: None,))
    first.start()
    time.sleep(0.05)
    started = time.monotonic()
    with pytest.raises(DatabaseTimeout), deadline(0.2):
        writes.run(lambda pending: None)
    assert time.monotonic() - started < 1.0
    gate.set()
    first.join(5)
    # The queue moves on afterwards.
    assert writes.run(lambda pending: "after") == "after"


def test_rows_of_a_batch_on_the_kept_connections_are_all_stored(engine: Engine) -> None:
    pinned = PinnedConnections(engine)
    writes = GroupCommit(pinned.transaction)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE batch_rows (n INTEGER PRIMARY KEY)"))

    def insert(n: int):
        def work(cursor: object) -> int:
            mark = "?" if engine.dialect.paramstyle == "qmark" else "%s"
            sql = f"INSERT INTO batch_rows (n) VALUES ({mark})"  # noqa: S608 - a constant
            cursor.execute(sql, (n,))  # type: ignore[attr-defined]
            return n

        return work

    works = [insert(n) for n in range(12)]
    works.append(insert(5))  # a duplicate key: whichever of the two fives runs second fails
    try:
        results = run_together(writes, works)
        fives = [results[5], results[12]]
        assert 5 in fives and sum(isinstance(r, Exception) for r in fives) == 1
        assert results[:5] + results[6:12] == [n for n in range(12) if n != 5]
        with engine.connect() as connection:
            stored = connection.execute(text("SELECT n FROM batch_rows ORDER BY n")).scalars()
            assert stored.all() == list(range(12))
    finally:
        pinned.close()
        # The database may serve another test next (PostgreSQL's are reused).
        with engine.begin() as connection:
            connection.execute(text("DROP TABLE batch_rows"))


def test_a_batch_runs_its_writes_in_the_order_of_their_keys() -> None:
    # Two processes' batches then take the row locks of the calls they share in one order.
    ledger = Ledger(hold=0.05)
    writes = GroupCommit(ledger.begin)
    keys = ["CA9", "CA3", "CA7", "CA1", "CA5"]
    first = threading.Thread(target=writes.run, args=(appender(-1),), kwargs={"key": "CA0"})
    first.start()
    time.sleep(0.01)  # the first write leads and commits; the others queue behind it
    results: dict[str, object] = {}

    def one(key: str) -> None:
        results[key] = writes.run(lambda pending: pending.append(key) or key, key=key)

    threads = [threading.Thread(target=one, args=(key,)) for key in keys]
    for thread in threads:
        thread.start()
        time.sleep(0.002)
    for thread in [first, *threads]:
        thread.join(5)
    assert results == {key: key for key in keys}
    assert ledger.committed[0] == -1
    assert ledger.committed[1:] == sorted(keys)
    assert ledger.commits == 2


def test_a_leader_stopped_mid_batch_leaves_no_write_answered_as_committed() -> None:
    # A worker shutting down (SystemExit in the leading thread) while its batch carries
    # another thread's write: that thread hears an error, never a result that was not committed.
    ledger = Ledger(hold=0.1)
    writes = GroupCommit(ledger.begin)

    def stopping(pending: list[object]) -> None:
        raise SystemExit(0)

    outcomes: dict[str, object] = {}

    def run(name: str, work, key: str) -> None:
        try:
            outcomes[name] = writes.run(work, key=key)
        except (SystemExit, DatabaseTimeout) as exc:
            outcomes[name] = exc

    first = threading.Thread(target=run, args=("first", appender(0), "CA0"))
    first.start()
    time.sleep(0.03)  # the first commit takes 100 ms: the next two queue behind it
    stopper = threading.Thread(target=run, args=("stopper", stopping, "CA1"))
    stopper.start()
    time.sleep(0.01)
    carried = threading.Thread(target=run, args=("carried", appender(2), "CA2"))
    carried.start()
    for thread in (first, stopper, carried):
        thread.join(5)
    assert outcomes["first"] == 0
    assert isinstance(outcomes["stopper"], SystemExit)
    assert isinstance(outcomes["carried"], DatabaseTimeout)
    assert ledger.committed == [0]
    # And the queue still moves.
    assert writes.run(appender(3), key="CA3") == 30


def test_a_write_taken_into_a_batch_waits_for_it_without_spinning_past_its_deadline() -> None:
    ledger = Ledger(hold=0.1)
    writes = GroupCommit(ledger.begin)

    def slow(pending: list[object]) -> str:
        time.sleep(0.4)  # the batch that carries the bounded write takes long
        pending.append("slow")
        return "slow"

    spent: dict[str, float] = {}
    outcome: dict[str, object] = {}

    def bounded() -> None:
        begun = time.thread_time()
        # Taken at about 0.06 s from now (the first commit's end), out of time at 0.15 s,
        # carried until about 0.56 s.
        with deadline(0.15):
            outcome["bounded"] = writes.run(appender(7), key="CA7")
        spent["cpu"] = time.thread_time() - begun

    first = threading.Thread(target=writes.run, args=(appender(0),), kwargs={"key": "CA0"})
    first.start()
    time.sleep(0.02)
    leader = threading.Thread(target=writes.run, args=(slow,), kwargs={"key": "CA1"})
    leader.start()
    time.sleep(0.02)
    waiter = threading.Thread(target=bounded)
    waiter.start()
    for thread in (first, leader, waiter):
        thread.join(5)
    # Carried by the slow batch, it was committed with it, and heard so.
    assert outcome["bounded"] == 70 and 7 in ledger.committed
    # It slept while it waited: no busy loop stealing the leader's interpreter.
    assert spent["cpu"] < 0.05


def recording_kind(runs: list[list[int]], *, refused: int | None = None) -> Together:
    """Writes of a kind run together: each run recorded; a run holding `refused` raises."""

    def many(pending: list[object], values: list[int]) -> list[int]:
        runs.append(values)
        if refused in values:
            raise ValueError("this write is wrong")
        pending.extend(values)
        return [value * 10 for value in values]

    return Together(many)


def test_writes_of_one_kind_run_together_once_per_batch_each_with_its_own_result() -> None:
    ledger = Ledger(hold=0.02)
    writes: GroupCommit[list[object]] = GroupCommit(ledger.begin)
    runs: list[list[int]] = []
    kind = recording_kind(runs)

    def write(i: int) -> object:
        # Odd ones of the kind, even ones plain writes, in the same batches.
        if i % 2:
            return writes.run_together(kind, i, key=f"CA{i:02}")
        return writes.run(appender(i), key=f"CA{i:02}")

    results = run_all(write, 16)
    assert results == [i * 10 for i in range(16)]
    assert sorted(ledger.committed) == list(range(16))  # type: ignore[type-var]
    # Each batch ran its writes of the kind in one go, in the order of their keys.
    assert sorted(value for run in runs for value in run) == list(range(1, 16, 2))
    assert all(run == sorted(run) for run in runs)
    assert len(runs) < 8


def test_writes_of_one_kind_whose_run_raises_are_tried_again_alone() -> None:
    ledger = Ledger(hold=0.02)
    writes: GroupCommit[list[object]] = GroupCommit(ledger.begin)
    runs: list[list[int]] = []
    kind = recording_kind(runs, refused=3)
    results = run_all(lambda i: writes.run_together(kind, i, key=f"CA{i:02}"), 8)
    assert isinstance(results[3], ValueError)
    assert [r for i, r in enumerate(results) if i != 3] == [i * 10 for i in range(8) if i != 3]
    assert sorted(ledger.committed) == [i for i in range(8) if i != 3]  # type: ignore[type-var]
    # Refused in a batch, then alone: the one write of it ran by itself.
    assert [3] in runs
