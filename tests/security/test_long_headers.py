"""A request header longer than MAX_HEADER_BYTES is a 431 in the answer's own format, from gunicorn too."""

from __future__ import annotations

import http.client
import time

import pytest
from django.test import Client

from tests.engine.test_liveness import process_env, web

LONG = "a" * 10_000


@pytest.mark.django_db
def test_a_long_header_on_the_api_is_a_json_431():
    response = Client().get("/api/v1/workflows/", HTTP_X_LONG=LONG)

    assert response.status_code == 431
    assert response.json() == {
        "detail": "The request header X-Long is 10,000 characters long; at most 8,190 are accepted."
    }


@pytest.mark.django_db
def test_a_long_header_on_a_page_is_a_plain_431():
    response = Client().get("/accounts/login/", HTTP_COOKIE="x=" + LONG)

    assert response.status_code == 431
    assert response["Content-Type"].startswith("text/plain")
    assert "Cookie is 10,002 characters long" in response.content.decode()


@pytest.mark.django_db
def test_headers_within_the_limit_pass():
    assert Client().get("/api/v1/workflows/", HTTP_X_LONG="a" * 8190).status_code == 401


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_gunicorn_lets_rowbell_answer_a_10000_character_header(tmp_path):
    process, port = web(process_env(smtp_port=1), tmp_path / "web.log")  # sends no email
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                connection.request("GET", "/api/v1/workflows/", headers={"X-Long": LONG})
                response = connection.getresponse()
                break
            except OSError:
                assert time.monotonic() < deadline, (tmp_path / "web.log").read_text()
                time.sleep(0.2)
        assert response.status == 431
        assert response.getheader("Content-Type") == "application/json"
        assert b"at most 8,190 are accepted" in response.read()
    finally:
        process.terminate()
        process.wait(10)
