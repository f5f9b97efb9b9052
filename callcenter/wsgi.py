"""The WSGI entry point for gunicorn: `gunicorn 'callcenter.wsgi:app'`.

A missing or malformed setting stops the process with one line naming it, not a traceback.
"""

from __future__ import annotations

import logging
import sys

from callcenter.app import create_app
from callcenter.settings import SettingsError

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

try:
    app = create_app()
except SettingsError as exc:
    print(f"callcenter: {exc}", file=sys.stderr)
    # gunicorn stops the whole server (not just restarts the worker) on exit code 3 or 4.
    sys.exit(4)
