"""Production settings come from the environment (config/production.env.example documents them), default
to what development needs, and pass `manage.py check --deploy` together."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.urls import reverse

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION_ENV = ROOT / "config" / "production.env.example"
SECURE = (
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    "SECURE_PROXY_SSL_HEADER",
    "SECURE_SSL_REDIRECT",
    "SECURE_REDIRECT_EXEMPT",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD",
    "DEBUG",
)


def production_env() -> dict[str, str]:
    pairs = (line.split("=", 1) for line in PRODUCTION_ENV.read_text().splitlines() if "=" in line)
    return {name: value for name, value in pairs if not name.startswith("#")}


def run_python(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """A fresh interpreter with only `env` on top of a clean environment (no settings of this test run)."""
    base = {k: v for k, v in os.environ.items() if k not in SECURE and k not in production_env()}
    # The databases of this test run, so that nothing needs the example hosts to exist.
    base |= {"DATABASE_URL": os.environ.get("DATABASE_URL", ""), "REDIS_URL": os.environ.get("REDIS_URL", "")}
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env={**base, **env}, capture_output=True, text=True, timeout=120
    )


def read_settings(env: dict[str, str]) -> dict:
    names = json.dumps(SECURE)
    code = (
        "import json, django; from django.conf import settings; django.setup(); "
        f"print(json.dumps({{n: getattr(settings, n) for n in {names}}}))"
    )
    result = run_python({"DJANGO_SETTINGS_MODULE": "config.settings", **env}, "-c", code)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.slow
def test_development_defaults_leave_https_off():
    assert read_settings({}) == {
        "SESSION_COOKIE_SECURE": False,
        "CSRF_COOKIE_SECURE": False,
        "SECURE_PROXY_SSL_HEADER": None,
        "SECURE_SSL_REDIRECT": False,
        "SECURE_REDIRECT_EXEMPT": [],
        "SECURE_HSTS_SECONDS": 0,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": False,
        "SECURE_HSTS_PRELOAD": False,
        "DEBUG": False,
    }


@pytest.mark.slow
def test_the_documented_production_environment_turns_everything_on():
    values = read_settings({**production_env(), "SECURE_REDIRECT_EXEMPT": "^healthz/$"})
    assert values == {
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"],
        "SECURE_SSL_REDIRECT": True,
        "SECURE_REDIRECT_EXEMPT": ["^healthz/$"],
        "SECURE_HSTS_SECONDS": 31536000,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
        "SECURE_HSTS_PRELOAD": True,
        "DEBUG": False,
    }


@pytest.mark.slow
@pytest.mark.parametrize(
    "value", ["X_FORWARDED_PROTO,https", "HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_PROTO,"]
)
def test_a_malformed_proxy_header_stops_the_start_with_a_clear_error(value):
    result = run_python(
        {"DJANGO_SETTINGS_MODULE": "config.settings", "SECURE_PROXY_SSL_HEADER": value},
        "-c",
        "import django; django.setup()",
    )
    assert result.returncode != 0
    assert "SECURE_PROXY_SSL_HEADER must look like HTTP_X_FORWARDED_PROTO,https" in result.stderr


def deploy_check(env: dict[str, str]) -> subprocess.CompletedProcess:
    return run_python(env, "manage.py", "check", "--deploy", "--fail-level", "WARNING")


@pytest.mark.slow
def test_check_deploy_passes_under_the_documented_environment_with_real_secrets():
    from cryptography.fernet import Fernet

    secrets = {"SECRET_KEY": os.urandom(40).hex(), "ENCRYPTION_KEYS": Fernet.generate_key().decode()}
    result = deploy_check({**production_env(), **secrets})
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


@pytest.mark.slow
def test_check_deploy_fails_on_the_development_defaults_and_on_missing_secrets():
    development = deploy_check({})
    assert development.returncode != 0
    for check in ("security.W004", "security.W008", "security.W009", "security.W012", "security.W016"):
        assert check in development.stderr
    missing_keys = deploy_check({**production_env(), "SECRET_KEY": os.urandom(40).hex()})
    assert missing_keys.returncode != 0 and "rowbell.W001" in missing_keys.stderr


def test_https_redirect_hsts_and_secure_cookies_apply(client, settings, owner):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_HSTS_SECONDS = 3600
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = True
    login = reverse("tenants:login")
    plain = client.get(login)
    assert plain.status_code == 301 and plain["Location"] == f"https://testserver{login}"
    secure = client.get(login, headers={"X-Forwarded-Proto": "https"})
    assert secure.status_code == 200 and secure["Strict-Transport-Security"] == "max-age=3600"
    assert secure.cookies["csrftoken"]["secure"] is True


def test_every_page_carries_the_strict_policy(client):
    header = client.get(reverse("tenants:login"))["Content-Security-Policy"]
    policy = dict(part.strip().split(" ", 1) for part in header.split(";"))
    assert policy["default-src"] == policy["script-src"] == policy["style-src"] == "'self'"
    assert policy["frame-ancestors"] == policy["object-src"] == "'none'"
    assert "unsafe-inline" not in header and "unsafe-eval" not in header
