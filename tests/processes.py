"""Real processes for the drills: the Procfile's web process, a TCP proxy that fails on command,
and signed requests sent to them as Twilio sends them."""

from __future__ import annotations

import contextlib
import select
import shlex
import socket
import subprocess
import sys
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

from tests.conftest import ACCOUNT_SID, PUBLIC_BASE_URL, sign


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def procfile_command(process: str) -> str:
    """The Procfile's command for a process type, as a platform would run it."""
    procfile = Path(__file__).resolve().parent.parent / "Procfile"
    for line in procfile.read_text().splitlines():
        name, _, command = line.partition(":")
        if name.strip() == process:
            return command.strip()
    raise AssertionError(f"no {process} in the Procfile")


def venv_command(process: str) -> str:
    """The Procfile's command, its program run by this interpreter (this test run's install)."""
    program, _, rest = procfile_command(process).partition(" ")
    return f"{shlex.quote(sys.executable)} -m {program} {rest}"


@contextmanager
def procfile_web(env: dict[str, str], log_path: Path, **extra: str) -> Iterator[str]:
    """Run the Procfile's `web` on loopback until /healthz answers 200; yield its base URL."""
    port = free_port()
    log = log_path.open("w")
    server = subprocess.Popen(
        ["bash", "-c", f"exec {venv_command('web')} --bind 127.0.0.1:{port}"],
        env={**env, "PORT": str(port), "WEB_CONCURRENCY": "2", **extra},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(base + "/healthz", timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(log_path.read_text())
            time.sleep(0.1)
        yield base
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def call_sid() -> str:
    return "CA" + uuid.uuid4().hex


def signed_post(base: str, path: str, form: dict[str, Any], **kwargs: Any) -> requests.Response:
    """POST a form to the service as Twilio does: signed over PUBLIC_BASE_URL + path."""
    signature = sign(PUBLIC_BASE_URL + path, form)
    return requests.post(
        base + path, data=form, headers={"X-Twilio-Signature": signature}, **kwargs
    )


def voice_form(sid: str, to: str, caller: str = "+37129111111") -> dict[str, str]:
    return {
        "CallSid": sid,
        "AccountSid": ACCOUNT_SID,
        "From": caller,
        "To": to,
        "CallStatus": "ringing",
        "Direction": "inbound",
        "ApiVersion": "2010-04-01",
    }


def timed_call(base: str, sid: str, to: str) -> tuple[float, ET.Element]:
    """Place a call's first webhook; return how long the answer took and its TwiML."""
    started = time.monotonic()
    response = signed_post(base, "/twilio/voice", voice_form(sid, to), timeout=30)
    elapsed = time.monotonic() - started
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/xml")
    return elapsed, ET.fromstring(response.content)


def dialled(root: ET.Element) -> list[str]:
    return [n.text or "" for n in root.iter("Number")]


def notice_first(root: ET.Element) -> bool:
    """Whether the recording notice (Say or Play) comes before any Dial."""
    tags = [child.tag for child in root]
    return "Dial" in tags and any(t in ("Say", "Play") for t in tags[: tags.index("Dial")])


class Proxy:
    """A TCP forwarder to a server that can refuse, or accept and never answer, on command."""

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.port = free_port()
        self.mode = "forward"
        self._listener: socket.socket | None = None
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._listen()

    def _listen(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return
            with self._lock:
                self._sockets.append(client)
            if self.mode == "blackhole":
                continue  # accepted, and never a byte back
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._sockets.append(upstream)
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        peers = {a: b, b: a}
        try:
            while not self._stopped.is_set():
                if self.mode != "forward":
                    time.sleep(0.05)  # holding: nothing passes either way
                    continue
                ready, _, _ = select.select([a, b], [], [], 0.05)
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    peers[sock].sendall(data)
        except OSError:
            return

    def blackhole(self) -> None:
        """Keep accepting; answer nothing, on new connections and existing ones alike."""
        self.mode = "blackhole"

    def refuse(self) -> None:
        """Stop listening and drop every connection: the server is gone."""
        self.mode = "refuse"
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.close()

    def restore(self) -> None:
        if self._listener is None:
            self._listen()
        self.mode = "forward"

    def close(self) -> None:
        self._stopped.set()
        self.refuse()
