"""S3 for tests: moto's server mode, a real HTTP endpoint on loopback that boto3 reaches through
AWS_ENDPOINT_URL, with fresh plain and versioned buckets per test.

Fixtures (import them into a conftest: `from tests.fakes.s3 import *  # noqa: F403`):
- `moto_server` (session): starts `ThreadedMotoServer` on 127.0.0.1, a free port; its URL.
- `aws_env` (function): sets AWS_ENDPOINT_URL to it, dummy credentials and region eu-north-1 in
  `os.environ` (boto3 reads them there) and removes AWS_PROFILE / AWS_ENDPOINT_URL_S3.
- `s3_client`: a boto3 S3 client for arranging and checking.
- `s3_bucket` / `s3_versioned_bucket`: the name of a new, empty bucket (versioning on for the
  second); `make_bucket(client, versioned=..., object_lock=...)` makes more.
The moto server keeps its state for the whole run: each test gets buckets of its own.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

REGION = "eu-north-1"

AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
}


def start_moto() -> tuple[Any, str]:
    """Start moto's S3 server on a free loopback port; return (server, endpoint URL)."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return server, f"http://{host}:{port}"


def make_bucket(client: Any, *, versioned: bool = False, object_lock: bool = False) -> str:
    """Create a bucket with a unique name and return the name."""
    name = f"rec-{uuid.uuid4().hex[:16]}"
    kwargs: dict[str, Any] = {
        "Bucket": name,
        "CreateBucketConfiguration": {"LocationConstraint": REGION},
    }
    if object_lock:
        kwargs["ObjectLockEnabledForBucket"] = True
    client.create_bucket(**kwargs)
    if versioned and not object_lock:
        client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    server, url = start_moto()
    yield url
    server.stop()


@pytest.fixture
def aws_env(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL_S3", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    return moto_server


@pytest.fixture
def s3_client(aws_env: str) -> Any:
    import boto3

    return boto3.client("s3")


@pytest.fixture
def s3_bucket(s3_client: Any) -> str:
    return make_bucket(s3_client)


@pytest.fixture
def s3_versioned_bucket(s3_client: Any) -> str:
    return make_bucket(s3_client, versioned=True)


__all__ = [
    "aws_env",
    "make_bucket",
    "moto_server",
    "s3_bucket",
    "s3_client",
    "s3_versioned_bucket",
    "start_moto",
]
