"""SQLite's writers' file lock under a deadline: got soon after it is let go, given up in time."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path

import pytest

from callcenter.db import DatabaseTimeout, WriterGate, deadline, make_engine


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[WriterGate]:
    engine = make_engine(f"sqlite:///{tmp_path / 'gate.db'}")
    yield WriterGate(engine)
    engine.dispose()


@pytest.fixture
def other(gate: WriterGate) -> Iterator[int]:
    """The lock file opened as another process's writer opens it."""
    assert gate.path is not None
    fd = os.open(gate.path, os.O_RDWR | os.O_CREAT)
    yield fd
    os.close(fd)


def free(fd: int, within: float = 2.0) -> bool:
    """Whether `fd` can take the lock within `within` seconds (and then lets it go)."""
    until = time.monotonic() + within
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if time.monotonic() >= until:
                return False
            time.sleep(0.005)
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return True


def test_a_bounded_writer_holds_the_lock_for_its_block_only(gate: WriterGate, other: int) -> None:
    with deadline(1.0), gate.held(), pytest.raises(BlockingIOError):
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    assert free(other, within=0)


def test_a_bounded_writer_gets_the_lock_soon_after_it_is_let_go(
    gate: WriterGate, other: int
) -> None:
    fcntl.flock(other, fcntl.LOCK_EX)
    got: list[float] = []

    def write() -> None:
        with deadline(5.0), gate.held():
            got.append(time.monotonic())

    writer = threading.Thread(target=write)
    writer.start()
    time.sleep(0.2)
    assert not got  # still waiting: the lock is held
    released = time.monotonic()
    fcntl.flock(other, fcntl.LOCK_UN)
    writer.join(5)
    assert got and got[0] - released < 0.5
    assert free(other, within=0)


def test_a_bounded_writer_gives_up_in_time_and_leaves_the_lock_free(
    gate: WriterGate, other: int
) -> None:
    fcntl.flock(other, fcntl.LOCK_EX)
    began = time.monotonic()
    with pytest.raises(DatabaseTimeout, match="writers' lock"), deadline(0.2), gate.held():
        pytest.fail("the lock is held by another")
    assert 0.15 <= time.monotonic() - began < 1.0
    fcntl.flock(other, fcntl.LOCK_UN)
    # The writer that gave up holds nothing: another writer takes the lock.
    assert free(other, within=0)
    # And the next bounded writer is served as usual.
    with deadline(1.0), gate.held(), pytest.raises(BlockingIOError):
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    assert free(other, within=0)


def test_after_a_writer_gave_up_the_next_bounded_writer_waits_its_turn(
    gate: WriterGate, other: int
) -> None:
    fcntl.flock(other, fcntl.LOCK_EX)
    with pytest.raises(DatabaseTimeout), deadline(0.1), gate.held():
        pytest.fail("the lock is held by another")
    got = threading.Event()

    def write() -> None:
        with deadline(5.0), gate.held():
            got.set()

    writer = threading.Thread(target=write)
    writer.start()
    time.sleep(0.1)
    assert not got.is_set()
    fcntl.flock(other, fcntl.LOCK_UN)
    writer.join(5)
    assert got.is_set()
    assert free(other)


def test_bounded_and_unbounded_writers_of_one_process_take_turns(gate: WriterGate) -> None:
    inside = 0
    most = 0
    count = threading.Lock()

    def write(bounded: bool) -> None:
        nonlocal inside, most
        for _ in range(50):
            with deadline(5.0) if bounded else nullcontext(), gate.held():
                with count:
                    inside += 1
                    most = max(most, inside)
                time.sleep(0.0005)
                with count:
                    inside -= 1

    threads = [threading.Thread(target=write, args=(i % 2 == 0,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert most == 1 and inside == 0
