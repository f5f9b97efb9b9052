"""A small fake of Twilio's recording deletion endpoint on loopback, with switchable failures.

Only what the retention sweep calls: `DELETE .../Recordings/{Sid}.json`. The real TwilioApi
adapter talks to it over HTTP, so its status handling (204, 404 = already gone, 500) is exercised.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_DELETE = re.compile(r"^/2010-04-01/Accounts/(AC[0-9a-f]{32})/Recordings/(RE[0-9a-f]{32})\.json$")


class FakeTwilio:
    def __init__(self) -> None:
        self.recordings: set[str] = set()
        self.deleted: list[str] = []
        self.requests: list[tuple[str, str]] = []
        # RecordingSid (or "*") -> HTTP status to answer instead of deleting.
        self.fail: dict[str, int] = {}
        self.lock = threading.Lock()
        self.url = ""

    def handle_delete(self, path: str) -> int:
        match = _DELETE.match(path)
        if not match:
            return 404
        sid = match.group(2)
        with self.lock:
            self.requests.append(("DELETE", sid))
            status = self.fail.get(sid) or self.fail.get("*")
            if status:
                return status
            if sid not in self.recordings:
                return 404
            self.recordings.discard(sid)
            self.deleted.append(sid)
            return 204


@contextmanager
def serve() -> Iterator[FakeTwilio]:
    fake = FakeTwilio()

    class Handler(BaseHTTPRequestHandler):
        def do_DELETE(self) -> None:
            status = fake.handle_delete(self.path)
            body = b"" if status == 204 else b'{"message": "fake"}'
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
