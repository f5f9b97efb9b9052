"""Retention fixtures: a runtime on local storage and a loopback fake Twilio, and recordings."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from callcenter.audit import log as retention_log
from callcenter.audit.models import RetentionEntry
from callcenter.db import transaction
from callcenter.recordings.models import Recording
from callcenter.recordings.policy import due_at
from callcenter.runtime import Runtime
from callcenter.settings import Settings, load
from tests.fakes.s3 import *  # noqa: F403  (moto S3 fixtures)
from tests.fakes.twilio_api import FakeTwilio
from tests.sids import new_sid


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    """The shared loopback fake of Twilio's REST API (tests/fakes)."""
    with FakeTwilio() as fake:
        yield fake


def provider_deleted(twilio: FakeTwilio) -> set[str]:
    """The recordings whose Twilio copy a DELETE removed."""
    return {sid for sid, rec in twilio.recordings.items() if rec.media_deleted}


def delete_requests(twilio: FakeTwilio, sid: str) -> int:
    return twilio.count("DELETE", f"/Recordings/{sid}.json")


@pytest.fixture
def retention_settings(env: dict[str, str], twilio: FakeTwilio) -> Settings:
    return load({**env, "TWILIO_API_BASE_URL": twilio.base_url})


@pytest.fixture
def rt(retention_settings: Settings, engine: Engine) -> Iterator[Runtime]:
    runtime = Runtime(retention_settings, _engine=engine)
    yield runtime


AddRecording = Callable[..., Recording]


@pytest.fixture
def add_recording(rt: Runtime, twilio: FakeTwilio) -> AddRecording:
    """Create a recording as ingestion leaves it: object stored, row `stored`, entry logged."""

    def add(
        started_at: datetime,
        *,
        status: str = "stored",
        twilio_copy: bool = False,
        content: bytes = b"RIFF fake audio",
        sid: str | None = None,
        on_hold: bool = False,
    ) -> Recording:
        sid = sid or new_sid("RE")
        key = None
        stored = None
        if status == "stored":
            key = f"recordings/{started_at:%Y/%m}/{sid}.wav"
            stored = rt.storage.put_stream(key, [content])
        if twilio_copy:
            twilio.add(sid)
        values: dict[str, Any] = {
            "recording_sid": sid,
            "call_sid": new_sid("CA"),
            "status": status,
            "started_at": started_at,
            "due_at": due_at(started_at, rt.settings),
            "storage_key": key,
            "size_bytes": stored.size if stored else None,
            "sha256": stored.sha256 if stored else None,
            "stored_at": started_at + timedelta(minutes=5) if stored else None,
            "provider_deleted_at": None if twilio_copy else started_at + timedelta(minutes=6),
            "on_hold": on_hold,
        }
        with transaction(rt.sessions) as session:
            recording = Recording(**values)
            session.add(recording)
            session.flush()
            if stored is not None:
                retention_log.append(
                    session,
                    "stored",
                    now=started_at + timedelta(minutes=5),
                    recording_sid=sid,
                    actor="ingest",
                    details={"key": key, "size": stored.size, "sha256": stored.sha256},
                )
        return recording

    return add


def entries(sessions: sessionmaker[Session], event: str | None = None) -> list[RetentionEntry]:
    with sessions() as session:
        query = select(RetentionEntry).order_by(RetentionEntry.seq)
        if event is not None:
            query = query.where(RetentionEntry.event == event)
        return list(session.scalars(query))


def count_entries(sessions: sessionmaker[Session], event: str, sid: str | None = None) -> int:
    with sessions() as session:
        query = select(func.count()).where(RetentionEntry.event == event)
        if sid is not None:
            query = query.where(RetentionEntry.recording_sid == sid)
        return int(session.scalar(query) or 0)


def reload(sessions: sessionmaker[Session], sid: str) -> Recording:
    with sessions() as session:
        return session.scalars(select(Recording).where(Recording.recording_sid == sid)).one()
