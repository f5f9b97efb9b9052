"""The composition root's parts: settings wired to the database, storage and Twilio, built once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from callcenter.adapters.storage import Storage, open_storage
from callcenter.adapters.twilio_api import TwilioApi
from callcenter.db import PinnedConnections, make_engine, make_sessionmaker, utcnow
from callcenter.directory.snapshot import DirectoryCache
from callcenter.settings import Settings

# Where the web app keeps its runtime (`app.extensions[EXTENSION]`).
EXTENSION = "callcenter.runtime"


@dataclass
class Runtime:
    """What a process needs, created lazily so a command only touches what it uses."""

    settings: Settings
    _engine: Engine | None = field(default=None, repr=False)
    # The time source; tests put the service at an exact instant by replacing it.
    clock: Callable[[], datetime] = field(default=utcnow, repr=False)

    @staticmethod
    def of(app: Any) -> Runtime:
        """Return the runtime a web app was built with (the one accessor, for every route)."""
        runtime: Runtime = app.extensions[EXTENSION]
        return runtime

    def now(self) -> datetime:
        return self.clock()

    @cached_property
    def engine(self) -> Engine:
        return self._engine or make_engine(self.settings.database_url)

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        return make_sessionmaker(self.engine)

    @cached_property
    def pinned(self) -> PinnedConnections:
        """This process's kept connections, for the write every call makes."""
        return PinnedConnections(self.engine)

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
        if "engine" in self.__dict__:
            self.engine.dispose()
