"""Sign-in, sign-out, CSRF, the lockout across processes, cookies and security headers."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from callcenter.accounts.models import SignInFailure
from callcenter.runtime import Runtime
from tests.calls.conftest import Clock
from tests.console.conftest import PASSWORD, SignedIn, csrf_token


def https_client(app: Flask) -> FlaskClient:
    """A client on https, where the Secure session cookie is sent."""
    client = app.test_client()
    client.environ_base["wsgi.url_scheme"] = "https"
    return client


def sign_in(client: FlaskClient, username: str, password: str, **extra: str):  # type: ignore[no-untyped-def]
    token = csrf_token(client)
    return client.post(
        "/console/login",
        data={"csrf_token": token, "username": username, "password": password, **extra},
    )


def test_signing_in_and_out(
    app: Flask, people: dict[str, int], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    client = https_client(app)
    assert client.get("/console/absences").status_code == 302
    response = sign_in(client, "liga", PASSWORD, next="/console/absences")
    assert response.status_code == 302
    assert response.headers["Location"] == "/console/absences"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" in cookie
    assert client.get("/console/absences").status_code == 200
    token = csrf_token(client, "/console/")
    assert client.post("/console/logout", data={"csrf_token": token}).status_code == 302
    assert client.get("/console/absences").status_code == 302
    text = caplog.text
    assert "signed in: user" in text and "signed out: user" in text
    assert PASSWORD not in text and "liga" not in text


def test_a_wrong_password_is_refused_and_logged_without_it(
    app: Flask, people: dict[str, int], caplog: pytest.LogCaptureFixture
) -> None:
    client = https_client(app)
    response = sign_in(client, "liga", "wrong password!")
    assert response.status_code == 401
    assert "Nepareizs lietotājvārds vai parole" in response.get_data(as_text=True)
    assert "wrong password!" not in caplog.text
    assert "sign-in refused" in caplog.text
    assert client.get("/console/").status_code == 302


def test_next_never_leaves_the_console(app: Flask, people: dict[str, int]) -> None:
    client = https_client(app)
    for target in ("https://evil.example/", "//evil.example/console/", "/api/me"):
        response = sign_in(client, "liga", PASSWORD, next=target)
        assert response.headers["Location"] == "/console/"


def test_a_form_post_without_its_csrf_token_is_refused(
    signed_in: SignedIn, session: Session
) -> None:
    client = signed_in("staff")
    form = {"start": "2026-03-03T08:00", "end": "2026-03-04T08:00", "substitute": "akalnins"}
    response = client.post("/console/absences", data=form)
    assert response.status_code == 400
    assert "Veidlapa ir novecojusi" in response.get_data(as_text=True)
    form["csrf_token"] = "forged"
    assert client.post("/console/absences", data=form).status_code == 400
    form["csrf_token"] = csrf_token(client, "/console/absences")
    assert client.post("/console/absences", data=form).status_code == 302


def test_a_cookie_session_writing_to_the_api_needs_the_csrf_header(signed_in: SignedIn) -> None:
    client = signed_in("staff")
    body = {"start": "2026-03-03T08:00", "end": "2026-03-04T08:00", "substitute": "akalnins"}
    assert client.post("/api/absences", json=body).status_code == 400
    token = csrf_token(client, "/console/absences")
    assert (
        client.post("/api/absences", json=body, headers={"X-CSRFToken": token}).status_code == 201
    )


def test_five_failures_lock_the_username_until_the_window_passes(
    app: Flask, people: dict[str, int], clock: Clock, runtime: Runtime, session: Session
) -> None:
    client = https_client(app)
    start = clock.now
    for _ in range(5):
        assert sign_in(client, "liga", "not the password").status_code == 401
        clock.tick(60)
    # Even the right password is not checked while locked; another process sees the same rows.
    other = https_client(app)
    locked = sign_in(other, "liga", PASSWORD)
    assert locked.status_code == 429
    assert int(locked.headers["Retry-After"]) > 0
    assert sign_in(client, "LIGA", PASSWORD).status_code == 429
    count = session.scalar(select(func.count()).select_from(SignInFailure))
    assert count == 5  # locked attempts are not counted: the lock ends with the window
    # The first failure leaves the window 15 minutes after it: one second before, still locked.
    clock.set(start + timedelta(minutes=15) - timedelta(seconds=1))
    assert sign_in(client, "liga", PASSWORD).status_code == 429
    clock.set(start + timedelta(minutes=15, seconds=1))
    assert sign_in(client, "liga", PASSWORD).status_code == 302
    # A success clears the count.
    assert session.scalar(select(func.count()).select_from(SignInFailure)) == 0


def test_a_locked_username_does_not_lock_another(
    app: Flask, people: dict[str, int], clock: Clock
) -> None:
    client = https_client(app)
    for _ in range(5):
        sign_in(client, "liga", "nope nope nope")
    assert sign_in(client, "boss", PASSWORD).status_code == 302


def test_a_deactivated_user_is_signed_out_at_once(
    signed_in: SignedIn, tokens: dict[str, str], sessions: object
) -> None:
    from callcenter.accounts import service as accounts
    from callcenter.db import transaction, utcnow

    client = signed_in("staff")
    assert client.get("/console/absences").status_code == 200
    with transaction(sessions) as session:  # type: ignore[arg-type]
        accounts.deactivate_user(session, "liga", now=utcnow())
    assert client.get("/console/absences").status_code == 302
    api = signed_in(None)
    assert (
        api.get("/api/me", headers={"Authorization": f"Bearer {tokens['staff']}"}).status_code
        == 401
    )


@pytest.mark.parametrize(
    "path",
    ["/console/login", "/console/", "/api/me", "/api/openapi.json", "/console/nope", "/healthz"],
)
def test_security_headers_on_every_response(signed_in: SignedIn, path: str) -> None:
    response = signed_in("staff").get(path)
    csp = response.headers["Content-Security-Policy"]
    assert "script-src" not in csp and "unsafe-inline" not in csp and "default-src 'none'" in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"]


def test_pages_are_latvian_first_and_english_on_request(app: Flask, people: dict[str, int]) -> None:
    client = app.test_client()
    page = client.get("/console/login").get_data(as_text=True)
    assert '<html lang="lv">' in page and "Pieteikties" in page
    english = client.get("/console/login", headers={"Accept-Language": "en-GB,en;q=0.9"})
    assert '<html lang="en">' in english.get_data(as_text=True)
    assert "Sign in" in english.get_data(as_text=True)
    client = app.test_client()
    assert "Sign in" in client.get("/console/login?lang=en").get_data(as_text=True)
    assert "Sign in" in client.get("/console/login").get_data(as_text=True)  # kept
    assert "Pieteikties" in client.get("/console/login?lang=lv").get_data(as_text=True)


def test_a_failing_page_shows_a_plain_error_page(
    app: Flask, signed_in: SignedIn, runtime: Runtime
) -> None:
    app.config["PROPAGATE_EXCEPTIONS"] = False

    def broken() -> object:
        raise RuntimeError("boom at a secret place")

    runtime.clock = broken  # type: ignore[assignment]
    page = signed_in("staff").get("/console/")
    assert page.status_code == 500
    text = page.get_data(as_text=True)
    assert "Traceback" not in text and "secret place" not in text and '<html lang="lv">' in text
    api = signed_in("staff").get("/api/absences")
    assert api.status_code == 500
    assert set(api.get_json()) == {"error"}
