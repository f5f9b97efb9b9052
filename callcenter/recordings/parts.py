"""What the recording jobs need from a process: its database, storage, Twilio API and settings.

A `Protocol`, so that the domain names what it uses without importing the composition root
(`callcenter.runtime.Runtime` has these, and tests can pass anything that does).
"""

from __future__ import annotations

from typing import Protocol

from sqlalchemy.orm import Session, sessionmaker

from callcenter.adapters.storage import Storage
from callcenter.adapters.twilio_api import TwilioApi
from callcenter.settings import Settings


class Parts(Protocol):
    @property
    def settings(self) -> Settings: ...

    @property
    def sessions(self) -> sessionmaker[Session]: ...

    @property
    def storage(self) -> Storage: ...

    @property
    def twilio(self) -> TwilioApi: ...
