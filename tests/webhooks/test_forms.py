"""Twilio's url-encoded forms, parsed straight from the input: the same result as werkzeug's."""

from __future__ import annotations

import pytest
from flask import Flask, Request, jsonify, request

from webhooks.forms import SMALL_FORM_BYTES, WebhookRequest

BODIES = [
    b"CallSid=CA1&From=%2B37129111111&To=%2B37167000001",
    b"CallerName=J%C4%81nis+B%C4%93rzi%C5%86%C5%A1&Empty=&Digits=1%23",
    b"a=1&a=2&b",
    b"odd=%ZZ%FF&plus=a+b%2Bc",
    b"",
]


def echo_app(request_class: type[Request]) -> Flask:
    app = Flask(__name__)
    app.request_class = request_class

    @app.post("/echo")
    def echo():  # type: ignore[no-untyped-def]
        return jsonify(sorted(request.form.items(multi=True)))

    return app


@pytest.mark.parametrize("body", BODIES)
def test_a_small_form_parses_as_werkzeug_parses_it(body: bytes) -> None:
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    ours = echo_app(WebhookRequest).test_client().post("/echo", data=body, headers=headers)
    theirs = echo_app(Request).test_client().post("/echo", data=body, headers=headers)
    assert ours.status_code == theirs.status_code == 200
    assert ours.json == theirs.json


def test_values_are_decoded() -> None:
    body = BODIES[1]
    response = (
        echo_app(WebhookRequest)
        .test_client()
        .post("/echo", data=body, headers={"Content-Type": "application/x-www-form-urlencoded"})
    )
    assert dict(map(tuple, response.json)) == {
        "CallerName": "Jānis Bērziņš",
        "Digits": "1#",
        "Empty": "",
    }


def test_a_body_that_is_not_utf8_parses_as_an_empty_form() -> None:
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    response = (
        echo_app(WebhookRequest).test_client().post("/echo", data=b"From=\xff\xfe", headers=headers)
    )
    assert response.json == []


def test_other_bodies_take_werkzeugs_path() -> None:
    client = echo_app(WebhookRequest).test_client()
    multipart = client.post("/echo", data={"CallSid": "CA1"}, content_type="multipart/form-data")
    assert multipart.json == [["CallSid", "CA1"]]
    big = b"x=" + b"y" * SMALL_FORM_BYTES
    large = client.post(
        "/echo", data=big, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert large.json == [["x", "y" * SMALL_FORM_BYTES]]


def test_the_form_answers_twilios_validator_without_a_failed_lookup() -> None:
    app = echo_app(WebhookRequest)
    with app.test_request_context(
        "/echo", method="POST", data=b"a=1&a=2", content_type="application/x-www-form-urlencoded"
    ):
        assert request.form.getall("a") == ["1", "2"]  # type: ignore[attr-defined]
