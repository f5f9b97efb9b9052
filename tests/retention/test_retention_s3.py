"""The sweep against S3 (moto's server on loopback): every version goes; per-key errors count.

moto does not produce per-key `Errors` in a DeleteObjects answer on its own, so one test
denies a key at the boto3 client: the key is taken out of the request before it is built (so S3
really keeps it) and an `<Error>` for it is written into moto's real 200 answer before botocore
parses it. The real S3Storage then reads it exactly as it would read AWS's answer.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from callcenter.adapters.storage import S3Storage
from callcenter.recordings.verification import verify
from callcenter.runtime import Runtime
from retention.sweep import sweep
from tests.retention.conftest import AddRecording, count_entries, entries, reload

STARTED = datetime(2026, 1, 15, 9, 30, tzinfo=UTC)
DUE = datetime(2026, 4, 15, 8, 30, tzinfo=UTC)


@pytest.fixture
def bucket(s3_versioned_bucket: str) -> str:
    return s3_versioned_bucket


@pytest.fixture
def s3_rt(rt: Runtime, s3_client: Any, bucket: str) -> Runtime:
    # The storage gets this test's client, so that the client's events can deny a key.
    rt.storage = S3Storage(bucket, "audio", client=s3_client)
    return rt


def _versions(s3_client: Any, bucket: str, key: str) -> int:
    answer = s3_client.list_object_versions(Bucket=bucket, Prefix=f"audio/{key}")
    items = [*answer.get("Versions", []), *answer.get("DeleteMarkers", [])]
    return sum(1 for item in items if item["Key"] == f"audio/{key}")


def test_every_version_and_delete_marker_goes(
    s3_rt: Runtime, add_recording: AddRecording, s3_client: Any, bucket: str
) -> None:
    recording = add_recording(STARTED)
    key = recording.storage_key or ""
    # Older versions and a delete marker: a plain DELETE would leave all of them readable.
    s3_client.put_object(Bucket=bucket, Key=f"audio/{key}", Body=b"older")
    s3_client.delete_object(Bucket=bucket, Key=f"audio/{key}")
    s3_client.put_object(Bucket=bucket, Key=f"audio/{key}", Body=b"RIFF fake audio")
    assert _versions(s3_client, bucket, key) == 4
    assert s3_rt.storage.versions_left(key) == 4

    assert sweep(s3_rt, now=DUE).deleted == 1
    assert _versions(s3_client, bucket, key) == 0
    [entry] = entries(s3_rt.sessions, "deleted")
    assert entry.details["object_versions_deleted"] == 4
    with s3_rt.sessions() as session:
        assert list(verify(session, s3_rt.storage, now=DUE)) == []


class DenyDeletion:
    """Make S3 refuse to delete some keys, as a bucket policy would, inside a 200 answer."""

    def __init__(self, client: Any, denied: set[str]) -> None:
        self.denied = denied
        self.held_back: list[dict[str, str]] = []
        events = client.meta.events
        events.register("before-parameter-build.s3.DeleteObjects", self.take_out)
        events.register("before-parse.s3.DeleteObjects", self.report_errors)
        self.client = client

    def take_out(self, params: dict[str, Any], **_: Any) -> None:
        objects = params["Delete"]["Objects"]
        self.held_back = [o for o in objects if o["Key"] in self.denied]
        params["Delete"]["Objects"] = [o for o in objects if o["Key"] not in self.denied]

    def report_errors(self, response_dict: dict[str, Any], **_: Any) -> None:
        if response_dict["status_code"] != 200 or not self.held_back:
            return
        errors = "".join(
            f"<Error><Key>{o['Key']}</Key><VersionId>{o['VersionId']}</VersionId>"
            "<Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
            for o in self.held_back
        )
        body = response_dict["body"].decode()
        if "</DeleteResult>" in body:
            body = body.replace("</DeleteResult>", errors + "</DeleteResult>")
        else:  # an empty quiet answer: <DeleteResult .../>
            body = re.sub(
                r"<DeleteResult([^>]*)/>", rf"<DeleteResult\1>{errors}</DeleteResult>", body
            )
        response_dict["body"] = body.encode()

    def remove(self) -> None:
        events = self.client.meta.events
        events.unregister("before-parameter-build.s3.DeleteObjects", self.take_out)
        events.unregister("before-parse.s3.DeleteObjects", self.report_errors)


def test_per_key_errors_in_a_200_answer_fail_only_that_recording(
    s3_rt: Runtime, add_recording: AddRecording, s3_client: Any, bucket: str
) -> None:
    refused = add_recording(STARTED)
    fine = add_recording(STARTED + timedelta(minutes=1))
    deny = DenyDeletion(s3_client, {f"audio/{refused.storage_key}"})

    report = sweep(s3_rt, now=DUE + timedelta(hours=1))
    assert (report.deleted, report.failed) == (1, 1)
    assert reload(s3_rt.sessions, fine.recording_sid).status == "deleted"
    assert _versions(s3_client, bucket, fine.storage_key or "") == 0
    # S3 really kept the refused object, and the row and the log say so.
    assert _versions(s3_client, bucket, refused.storage_key or "") == 1
    row = reload(s3_rt.sessions, refused.recording_sid)
    assert row.status == "stored" and row.deleted_at is None
    [failed] = entries(s3_rt.sessions, "delete_failed")
    assert failed.recording_sid == refused.recording_sid
    assert "AccessDenied" in failed.details["error"]

    deny.remove()
    assert sweep(s3_rt, now=DUE + timedelta(days=1)).deleted == 1
    assert _versions(s3_client, bucket, refused.storage_key or "") == 0
    assert count_entries(s3_rt.sessions, "deleted", refused.recording_sid) == 1
