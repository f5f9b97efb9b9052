"""The WSGI entry point for gunicorn: `gunicorn -c python:callcenter.gunicorn_config ...wsgi:app`.

A missing or malformed setting, a schema behind the code or unreachable storage stops the
process with one line saying so, not a traceback.
"""

from __future__ import annotations

import sys

from callcenter import health, logs, metrics
from callcenter import settings as settings_module
from callcenter.app import create_app
from callcenter.runtime import WEB_BOUNDS, Runtime
from callcenter.settings import SettingsError

try:
    _settings = settings_module.for_web(settings_module.load())
    logs.configure(_settings.log_format)
    metrics.check_multiprocess_dir()
    _runtime = Runtime(_settings, bounds=WEB_BOUNDS)
    health.check_at_start(_runtime)
    app = create_app(runtime=_runtime)
except (SettingsError, health.NotReady) as exc:
    print(f"callcenter: {exc}", file=sys.stderr)
    # gunicorn stops the whole server (not just restarts the worker) on exit code 3 or 4.
    sys.exit(4)
