"""The composition root's parts: settings wired to the database, storage and Twilio, built once."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from callcenter.adapters.storage import Storage, open_storage
from callcenter.adapters.twilio_api import TwilioApi
from callcenter.db import (
    Bounds,
    PinnedConnections,
    WriterGate,
    make_engine,
    make_sessionmaker,
    utcnow,
    write_transaction,
)
from callcenter.directory.snapshot import DirectoryCache
from callcenter.settings import Settings

# Where the web app keeps its runtime (`app.extensions[EXTENSION]`).
EXTENSION = "callcenter.runtime"

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

    @staticmethod
    def of(app: Any) -> Runtime:
        """Return the runtime a web app was built with (the one accessor, for every route)."""
        runtime: Runtime = app.extensions[EXTENSION]
        return runtime

    def now(self) -> datetime:
        return self.clock()

    @cached_property
    def engine(self) -> Engine:
        return self._engine or make_engine(self.settings.database_url, bounds=self.bounds)

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        return make_sessionmaker(self.engine)

    @cached_property
    def voice_engine(self) -> Engine:
        """The engine of the voice routes: every wait ends well within a second.

        Past the bound the route answers the fallback TwiML (notice, then FALLBACK_NUMBER), so
        a database that refuses, never answers or stays locked costs a caller under a second.
        """
        return make_engine(self.settings.database_url, bounds=voice_bounds(self.settings))

    @cached_property
    def voice_sessions(self) -> sessionmaker[Session]:
        return make_sessionmaker(self.voice_engine)

    @cached_property
    def gate(self) -> WriterGate:
        """SQLite's writers' queue of this process's web writers (nothing on PostgreSQL)."""
        return WriterGate(self.voice_engine)

    @cached_property
    def pinned(self) -> PinnedConnections:
        """This process's kept connections, for the write every call makes."""
        return PinnedConnections(self.voice_engine, self.gate)

    def writing(self, *, voice: bool = False) -> AbstractContextManager[Session]:
        """A webhook's write transaction, in the writers' queue (db.write_transaction).

        `voice`: on the voice engine, whose every wait ends well within a second.
        """
        return write_transaction(self.voice_sessions if voice else self.sessions, self.gate)

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
