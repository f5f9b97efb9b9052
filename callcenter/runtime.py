"""The composition root's parts: settings wired to the database, storage and Twilio, built once."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from callcenter.adapters.storage import Storage, open_storage
from callcenter.adapters.twilio_api import TwilioApi
from callcenter.db import (
    Bounds,
    GroupCommit,
    PinnedConnections,
    Together,
    WriterGate,
    current_deadline,
    make_engine,
    make_sessionmaker,
    utcnow,
    write_transaction,
)
from callcenter.directory.snapshot import DirectoryCache
from callcenter.settings import Settings

# Where the web app keeps its runtime (`app.extensions[EXTENSION]`).
EXTENSION = "callcenter.runtime"

R = TypeVar("R")
A = TypeVar("A")

# The web process's other routes (status and recording callbacks, /healthz): Twilio waits 15 s
# and retries, but a thread stuck on a database that never answers is a thread no call gets.
WEB_BOUNDS = Bounds(seconds=5.0, statement_timeout_ms=4000, lock_timeout_ms=2000)


def voice_bounds(settings: Settings) -> Bounds:
    """The bounds of the routes a caller waits on: the server's own timeouts end first."""
    ms = settings.voice_database_timeout_ms
    return Bounds(seconds=ms / 1000, statement_timeout_ms=ms * 3 // 4, lock_timeout_ms=ms // 2)


@dataclass
class Runtime:
    """What a process needs, created lazily so a command only touches what it uses."""

    settings: Settings
    _engine: Engine | None = field(default=None, repr=False)
    # The time source; tests put the service at an exact instant by replacing it.
    clock: Callable[[], datetime] = field(default=utcnow, repr=False)
    # The bounds of `engine`'s waits: the web process's (WEB_BOUNDS); none for commands.
    bounds: Bounds | None = None
    _writes: dict[tuple[bool, bool, Any], GroupCommit[Session]] = field(
        default_factory=dict, repr=False
    )
    _writes_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    # What a driver keeps for this runtime's life, by a name of its own (the voice webhook's
    # fast path, say): the runtime is what both the Flask routes and webhooks.front are given.
    kept: dict[str, Any] = field(default_factory=dict, repr=False)

    @staticmethod
    def of(app: Any) -> Runtime:
        """Return the runtime a web app was built with (the one accessor, for every route)."""
        runtime: Runtime = app.extensions[EXTENSION]
        return runtime

    def now(self) -> datetime:
        return self.clock()

    @cached_property
    def engine(self) -> Engine:
        return self._engine or make_engine(
            self.settings.database_url,
            bounds=self.bounds,
            background_checkpoints=self.bounds is not None,
        )

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        return make_sessionmaker(self.engine)

    @cached_property
    def voice_engine(self) -> Engine:
        """The engine of the voice routes: every wait ends well within a second.

        Past the bound the route answers the fallback TwiML (notice, then FALLBACK_NUMBER), so
        a database that refuses, never answers or stays locked costs a caller under a second.
        """
        # The web process's (bounds set): its WAL checkpoints run off the write path.
        return make_engine(
            self.settings.database_url,
            bounds=voice_bounds(self.settings),
            background_checkpoints=self.bounds is not None,
        )

    @cached_property
    def voice_sessions(self) -> sessionmaker[Session]:
        return make_sessionmaker(self.voice_engine)

    @cached_property
    def gate(self) -> WriterGate:
        """SQLite's writers' queue of this process's web writers (nothing on PostgreSQL)."""
        return WriterGate(self.voice_engine)

    @cached_property
    def pinned(self) -> PinnedConnections:
        """This process's kept connection, for the write every call makes (call_writes)."""
        return PinnedConnections(self.voice_engine, self.gate)

    def write(self, work: Callable[[Session], R], *, key: str, voice: bool = False) -> R:
        """Run a webhook's write, committed with the other threads' writes of the moment.

        `work(session)` must touch nothing but the session (it may run again; see
        db.GroupCommit) and nothing of the Flask request (another thread may run it); its
        result is returned once the commit carrying it has succeeded. `key`: the CallSid of
        the call it is about (db.GroupCommit.run). `voice`: on the voice
        engine, whose every wait ends well within a second. Writes under a running deadline
        and writes without one are committed apart, so that no bounded write waits on an
        unbounded one.
        """
        return self._writes_of(voice, None).run(work, key=key)

    def write_together(
        self, together: Together[Session, A, R], arg: A, *, key: str, voice: bool = False
    ) -> R:
        """Run a write of a kind that a batch runs in one go (`db.Together`), as `write` runs
        one. Such writes are committed apart from the others, so that a batch runs them all
        at once and still takes its row locks in the order of their keys."""
        return self._writes_of(voice, together).run_together(together, arg, key=key)

    def _writes_of(
        self, voice: bool, together: Together[Session, Any, Any] | None
    ) -> GroupCommit[Session]:
        kind = (voice, current_deadline() is not None, together)
        writes = self._writes.get(kind)
        if writes is None:
            factory = self.voice_sessions if voice else self.sessions
            with self._writes_lock:
                writes = self._writes.setdefault(
                    kind,
                    GroupCommit(lambda: write_transaction(factory, self.gate)),
                )
        return writes

    @cached_property
    def call_writes(self) -> GroupCommit[Any]:
        """The voice route's writes on this process's kept connections (a DB-API cursor)."""
        return GroupCommit(self.pinned.transaction)

    @cached_property
    def directory(self) -> DirectoryCache:
        return DirectoryCache(self.settings)

    @cached_property
    def storage(self) -> Storage:
        return open_storage(self.settings)

    @cached_property
    def twilio(self) -> TwilioApi:
        return TwilioApi(self.settings)

    def close(self) -> None:
        if "pinned" in self.__dict__:
            self.pinned.close()
        if "voice_engine" in self.__dict__:
            self.voice_engine.dispose()
        if "engine" in self.__dict__:
            self.engine.dispose()
