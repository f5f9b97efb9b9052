"""Black box: the real web process (gunicorn) and the `callcenter` command as subprocesses,
driven through a whole call as Twilio would drive it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.fakes.twilio_api import FakeTwilio, fake_twilio
from tests.processes import free_port, procfile_web, venv_command

__all__ = ["fake_twilio"]

CALLCENTER = [sys.executable, "-m", "callcenter"]


@pytest.fixture
def process_env(env: dict[str, str], fake_twilio: FakeTwilio) -> dict[str, str]:
    # Twilio's REST API on loopback: the simulated call's recording is fetched from there.
    fake_twilio.serve_unknown = True
    return {
        **os.environ,
        **env,
        "TWILIO_API_BASE_URL": fake_twilio.base_url,
        "PYTHONUNBUFFERED": "1",
    }


def cli(process_env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CALLCENTER, *args], env=process_env, capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def web(process_env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    # The Procfile's own web command, on loopback, until /healthz answers.
    with procfile_web(process_env, tmp_path / "gunicorn.log") as base:
        yield base


def test_a_whole_call_through_gunicorn_and_the_cli(process_env: dict[str, str], web: str) -> None:
    for args in (
        ("staff", "add", "jberzins", "--name", "Jānis Bērziņš", "--phone", "20000001"),
        ("staff", "add", "lozola", "--name", "Līga Ozola", "--phone", "20000002"),
        ("line", "add", "+37167000002", "--target", "staff:jberzins", "--hours", "always"),
        (
            "absence",
            "add",
            "jberzins",
            "--start",
            "2020-01-01T00:00",
            "--end",
            "2099-01-01T00:00",
            "--substitute",
            "lozola",
        ),
    ):
        result = cli(process_env, *args)
        assert result.returncode == 0, result.stderr

    health = requests.get(web + "/healthz", timeout=5)
    assert health.json().items() >= {"database": "ok", "storage": "ok"}.items()

    unsigned = requests.post(web + "/twilio/voice", data={"CallSid": "CA1"}, timeout=5)
    assert unsigned.status_code == 403

    result = cli(
        process_env,
        "simulate-call",
        "--url",
        web,
        "--to",
        "+37167000002",
        "--from",
        "+37129111111",
        "--record",
    )
    assert result.returncode == 0, result.stderr
    transcript = result.stdout.splitlines()
    assert transcript[-1].startswith("CallSid: CA")
    notice = next(i for i, line in enumerate(transcript) if "ierakstīta" in line)
    dialling = next(i for i, line in enumerate(transcript) if line.startswith("dialling"))
    assert notice < dialling
    assert "+37120000002" in transcript[dialling]
    assert any(
        "Jānis Bērziņš" in line and line.startswith("+37120000002 hears") for line in transcript
    )

    calls = json.loads(cli(process_env, "calls", "list", "--json").stdout)
    assert len(calls) == 1
    assert calls[0]["from"] == "+37129111111" and calls[0]["to"] == "+37167000002"
    # Twilio's whole part was played: the call ended, the substitute's press of 1 counted,
    # the recording was reported and can be ingested from the (fake) Twilio API.
    assert calls[0]["call_sid"] == transcript[-1].split()[-1]
    assert (calls[0]["status"], calls[0]["outcome"]) == ("completed", "answered")
    assert (calls[0]["answered_by"], calls[0]["as_substitute"]) == ("lozola", True)
    assert calls[0]["recorded"] is True and calls[0]["survey"] is None
    ingested = cli(process_env, "recordings", "ingest")
    assert ingested.returncode == 0, ingested.stderr + ingested.stdout
    recordings = json.loads(cli(process_env, "recordings", "list", "--json").stdout)
    assert [r["status"] for r in recordings] == ["stored"]


def test_web_process_refuses_to_start_without_its_settings(
    process_env: dict[str, str], tmp_path: Path
) -> None:
    env = {k: v for k, v in process_env.items() if k != "TWILIO_AUTH_TOKEN"}
    command = venv_command("web") + " --bind 127.0.0.1:0"
    result = subprocess.run(
        ["bash", "-c", f"exec {command}"],
        env={**env, "PORT": str(free_port())},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == ["callcenter: setting TWILIO_AUTH_TOKEN: is required and not set"]


def test_cli_usage_errors_are_one_line(process_env: dict[str, str]) -> None:
    result = cli(process_env, "absence", "add", "jberzins")
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Missing option" in result.stderr


def test_the_readme_run_command_serves_and_shows_a_call(tmp_path: Path) -> None:
    """`callcenter serve` on a fresh directory: embedded defaults, sample calls printed."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TWILIO_", "DATABASE_URL", "RECORDINGS_URL", "PUBLIC_"))
    }
    port = free_port()
    server = subprocess.Popen(
        [*CALLCENTER, "serve", "--port", str(port)],
        cwd=tmp_path,
        env={**env, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        assert server.stdout is not None
        deadline = time.monotonic() + 60
        for line in server.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("more:") or time.monotonic() > deadline:
                break
        health = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
        # Another call, from another terminal, as the README says.
        another = subprocess.run(
            [
                *CALLCENTER,
                "simulate-call",
                "--url",
                f"http://127.0.0.1:{port}",
                "--to",
                "+37167000001",
                "--outcome",
                "no-answer",
                "--outcome",
                "no-answer",
                "--press",
                "1",
            ],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        # Give the scheduler child time to start (or to refuse to), then stop everything.
        time.sleep(3)
        server.terminate()
        rest, _ = server.communicate(timeout=30)
    output = "\n".join(lines)
    assert "development defaults for:" in output
    # The scheduler ran beside the web process, on the same development defaults.
    assert "scheduler lease taken" in rest, rest
    assert "callcenter: " not in rest, rest
    assert "simulation failed" not in output, output
    notice = output.index("ierakstīta")
    assert notice < output.index("dialling +37120000002")
    assert "Jānis Bērziņš" in output and "atzvanīsim" in output
    assert health.json().items() >= {"database": "ok", "storage": "ok"}.items()
    assert (tmp_path / "var" / "callcenter.db").exists()
    assert another.returncode == 0, another.stderr
    assert "caller presses 1" in another.stdout
