"""Accounts: add users, check passwords, issue API tokens, slow down guessing.

Domain functions take a session and never commit. They raise `AccountError` with a message
fit to show the person who typed the command.

Rules:
- a username is 2-40 lowercase letters, digits, '.', '_' or '-', starting with a letter;
- a password has at least MIN_PASSWORD_CHARS characters; only its argon2id hash is kept;
- a `staff` user is linked to a staff member (whose absences, calls and callbacks are theirs);
- an API token is shown once; only its SHA-256 is kept (a token is 256 random bits, so a
  fast hash is enough, and it lets a request find its token with one indexed lookup);
- after MAX_FAILURES failed sign-ins for one username within LOCKOUT_WINDOW, further attempts
  are refused, without checking the password, until the oldest of those failures is older
  than the window. The failures are rows, so every web process sees the same count.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from callcenter.accounts.models import ROLES, ApiToken, SignInFailure, User
from callcenter.directory.models import Staff

_USERNAME = re.compile(r"^[a-z][a-z0-9_.-]{1,39}$")
MIN_PASSWORD_CHARS = 10
MAX_PASSWORD_CHARS = 1024
# The contract: after 5 failures within 15 minutes, 429 until the window has passed.
MAX_FAILURES = 5
LOCKOUT_WINDOW = timedelta(minutes=15)
TOKEN_PREFIX = "cc_"  # noqa: S105 - a marker, not a secret

_hasher = PasswordHasher()
# Verified against when the username is unknown, so that a wrong username costs as much time
# as a wrong password and response times do not tell which usernames exist.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class AccountError(ValueError):
    """An account change refused, with the reason to show."""


class SignInLocked(Exception):
    """Too many failed sign-ins for this username; try again at `until`."""

    def __init__(self, until: datetime) -> None:
        super().__init__(f"too many failed sign-ins; try again after {until.isoformat()}")
        self.until = until


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return bool(_hasher.verify(password_hash, password))
    except (VerificationError, InvalidHashError):
        return False


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def check_password_rules(password: str) -> None:
    if len(password) < MIN_PASSWORD_CHARS:
        raise AccountError(f"the password must have at least {MIN_PASSWORD_CHARS} characters")
    if len(password) > MAX_PASSWORD_CHARS:
        raise AccountError(f"the password must have at most {MAX_PASSWORD_CHARS} characters")


def get_user(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise AccountError(f"no user {username!r}")
    return user


def add_user(
    session: Session,
    username: str,
    *,
    role: str,
    password: str,
    staff_key: str | None = None,
    now: datetime,
) -> User:
    """Add a user with a role (and, for staff, the staff member they are)."""
    if not _USERNAME.match(username):
        raise AccountError(
            f"username {username!r} must be 2-40 lowercase letters, digits, '.', '_' or '-', "
            "starting with a letter"
        )
    if role not in ROLES:
        raise AccountError(f"--role must be one of {', '.join(ROLES)}")
    if role == "staff" and staff_key is None:
        raise AccountError("a staff user needs --staff KEY: the staff member they are")
    staff = None
    if staff_key is not None:
        staff = session.scalar(select(Staff).where(Staff.key == staff_key))
        if staff is None:
            raise AccountError(f"no staff member {staff_key!r}")
    check_password_rules(password)
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise AccountError(f"user {username!r} already exists")
    user = User(
        username=username,
        role=role,
        staff_id=staff.id if staff else None,
        password_hash=hash_password(password),
        active=True,
        created_at=now,
    )
    session.add(user)
    session.flush()
    return user


def list_users(session: Session) -> Sequence[User]:
    return session.scalars(select(User).order_by(User.username)).all()


def deactivate_user(session: Session, username: str, *, now: datetime) -> User:
    """Stop a user signing in or using their tokens (their sessions end at the next request)."""
    user = get_user(session, username)
    if not user.active:
        raise AccountError(f"user {username!r} is already inactive")
    user.active = False
    user.deactivated_at = now
    session.execute(delete(ApiToken).where(ApiToken.user_id == user.id))
    return user


def create_token(session: Session, username: str, *, now: datetime) -> tuple[ApiToken, str]:
    """Issue an API token; return its row and the token itself, which is not kept."""
    user = get_user(session, username)
    if not user.active:
        raise AccountError(f"user {username!r} is inactive")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(user_id=user.id, token_hash=hash_token(token), created_at=now)
    session.add(row)
    session.flush()
    return row, token


def user_for_token(session: Session, token: str) -> User | None:
    """Return the active user a token belongs to, or None."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
    if row is None or not row.user.active:
        return None
    return row.user


def _key(username: str) -> str:
    return username.strip().lower()[:40]


def locked_until(session: Session, username: str, *, now: datetime) -> datetime | None:
    """Return when a locked-out username may try again, or None if it may try now."""
    recent = session.scalars(
        select(SignInFailure.at)
        .where(SignInFailure.username == _key(username), SignInFailure.at > now - LOCKOUT_WINDOW)
        .order_by(SignInFailure.at.desc())
        .limit(MAX_FAILURES)
    ).all()
    if len(recent) < MAX_FAILURES:
        return None
    # Free again once the oldest of the last MAX_FAILURES has left the window.
    return recent[-1] + LOCKOUT_WINDOW


def failures(session: Session, username: str, *, now: datetime) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(SignInFailure)
            .where(
                SignInFailure.username == _key(username), SignInFailure.at > now - LOCKOUT_WINDOW
            )
        )
        or 0
    )


@dataclass(frozen=True)
class SignIn:
    """The outcome of a sign-in attempt: the user, or None when refused."""

    user: User | None


def sign_in(session: Session, username: str, password: str, *, now: datetime) -> SignIn:
    """Check a username and password; record a failure, or clear the failures on success.

    Raises SignInLocked while the username is locked out (the password is not checked then,
    and the attempt is not counted, so the lock ends when the window has passed).
    """
    until = locked_until(session, username, now=now)
    if until is not None:
        raise SignInLocked(until)
    user = session.scalar(select(User).where(User.username == _key(username)))
    # A password longer than any that can be set is wrong; it is not hashed at all.
    too_long = len(password) > MAX_PASSWORD_CHARS
    good = not too_long and verify_password(user.password_hash if user else _DUMMY_HASH, password)
    if user is None or not good or not user.active:
        session.add(SignInFailure(username=_key(username), at=now))
        # Rows older than the window are of no use any more.
        session.execute(
            delete(SignInFailure).where(
                SignInFailure.username == _key(username), SignInFailure.at <= now - LOCKOUT_WINDOW
            )
        )
        session.flush()
        return SignIn(None)
    session.execute(delete(SignInFailure).where(SignInFailure.username == user.username))
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    return SignIn(user)
