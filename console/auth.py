"""Sign-in state: Flask-Login sessions in signed cookies, API tokens, the signed-in viewer.

A `Viewer` is what a request knows about who is asking: their user and, for staff, the staff
member whose absences, calls and callbacks are theirs. It is built from the database on each
request, so a deactivated user's session and tokens stop working at once.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from flask import Flask, current_app, g, request
from flask_login import LoginManager, UserMixin, current_user
from sqlalchemy.orm import Session

from callcenter.accounts import service as accounts
from callcenter.accounts.models import User
from callcenter.db import transaction
from callcenter.directory.models import Staff
from callcenter.runtime import Runtime
from console.access import is_api


@dataclass(frozen=True)
class Viewer(UserMixin):
    user_id: int
    username: str
    role: str
    staff_id: int | None
    staff_key: str | None

    @property
    def id(self) -> str:
        return str(self.user_id)

    def get_id(self) -> str:
        return str(self.user_id)

    @property
    def sees_everyone(self) -> bool:
        return self.role == "supervisor"

    def own_staff(self, session: Session) -> Staff | None:
        """The staff member this viewer is, for staff (None for everyone else)."""
        if self.sees_everyone or self.staff_id is None:
            return None
        return session.get(Staff, self.staff_id)

    def sees_nothing(self) -> bool:
        return not self.sees_everyone and self.staff_id is None

    @classmethod
    def of(cls, user: User) -> Viewer:
        return cls(
            user.id, user.username, user.role, user.staff_id, user.staff.key if user.staff else None
        )


def runtime() -> Runtime:
    return Runtime.of(current_app)


def db() -> AbstractContextManager[Session]:
    """One unit of work on the runtime's database, for the console's views."""
    return transaction(runtime().sessions)


def now() -> datetime:
    return runtime().now()


def zone() -> ZoneInfo:
    return runtime().settings.timezone


def _load_user(user_id: str) -> Viewer | None:
    if not user_id.isdigit() or len(user_id) > 12:
        return None
    with transaction(runtime().sessions) as session:
        user = session.get(User, int(user_id))
        if user is None or not user.active:
            return None
        return Viewer.of(user)


def _load_from_request(_request: object) -> Viewer | None:
    """API requests may carry `Authorization: Bearer TOKEN` instead of a session."""
    if not is_api(request.path):
        return None
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    with transaction(runtime().sessions) as session:
        user = accounts.user_for_token(session, token.strip())
        if user is None:
            return None
        g.auth_via_token = True
        return Viewer.of(user)


def viewer() -> Viewer:
    """The signed-in viewer (routes that call this declare roles, so there is one)."""
    found = current_user._get_current_object()
    assert isinstance(found, Viewer)
    return found


def via_token() -> bool:
    return bool(g.get("auth_via_token"))


def init_app(app: Flask) -> None:
    manager = LoginManager()
    manager.user_loader(_load_user)
    manager.request_loader(_load_from_request)
    # The access hook answers anonymous visitors itself (login page or 401).
    manager.login_view = None
    manager.init_app(app)
