"""Listening to a recording kept in S3 (moto's server, a real HTTP endpoint): the audio streams
from the bucket, and a Range asks S3 for those bytes only."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest
from flask.testing import FlaskClient

from callcenter.adapters.storage import S3Storage
from callcenter.runtime import Runtime
from tests.console.conftest import AUDIO, AddRecording, bearer
from tests.fakes.s3 import *  # noqa: F403  (moto S3 fixtures)

pytestmark = pytest.mark.slow


@pytest.fixture
def env(env: dict[str, str], s3_bucket: str) -> dict[str, str]:
    return {**env, "RECORDINGS_URL": f"s3://{s3_bucket}/calls"}


def test_s3_reads_sizes_and_byte_ranges(s3_bucket: str) -> None:
    storage = S3Storage(s3_bucket, "calls")
    storage.put_stream("a/b.wav", [AUDIO])
    assert storage.size("a/b.wav") == len(AUDIO)
    assert storage.size("a/missing.wav") is None
    with storage.open_range("a/b.wav", 1000, 1999) as body:
        assert body.read() == AUDIO[1000:2000]
    with pytest.raises(KeyError):
        storage.open_range("a/missing.wav", 0, 9)


def test_the_audio_streams_from_s3_with_ranges(
    client: FlaskClient,
    tokens: dict[str, str],
    add_recording: AddRecording,
    runtime: Runtime,
    s3_client: Any,
    s3_bucket: str,
) -> None:
    assert runtime.storage.url == f"s3://{s3_bucket}/calls"
    sid = add_recording()
    answer = client.post(
        f"/api/recordings/{sid}/access",
        json={"reason": "quality review", "purpose": "listen"},
        headers=bearer(tokens["compliance"]),
    ).get_json()
    path = urlsplit(answer["url"]).path
    whole = client.get(path)
    assert whole.status_code == 200 and whole.data == AUDIO
    assert whole.headers["Content-Length"] == str(len(AUDIO))
    middle = client.get(path, headers={"Range": "bytes=5000-5099"})
    assert middle.status_code == 206 and middle.data == AUDIO[5000:5100]
    tail = client.get(path, headers={"Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.data == AUDIO[-10:]
    beyond = client.get(path, headers={"Range": f"bytes={len(AUDIO) + 5}-"})
    assert beyond.status_code == 416
    assert beyond.headers["Content-Range"] == f"bytes */{len(AUDIO)}"
    # Gone from the bucket behind the row's back: 410, not a traceback.
    [key] = [o["Key"] for o in s3_client.list_objects_v2(Bucket=s3_bucket)["Contents"]]
    s3_client.delete_object(Bucket=s3_bucket, Key=key)
    assert client.get(path).status_code == 410
