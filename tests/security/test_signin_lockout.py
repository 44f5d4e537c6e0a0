"""Sign-in lockout: the failure count is keyed on the username as authentication sees it, so whitespace,
case and Unicode-width variants of one name share one count, and parallel guesses cannot outrun it."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import Client

from tenants.models import Role
from tests.support import PASSWORD, make_user

LOGIN = "/accounts/login/"
WRONG = "Please enter a correct username and password"
LOCKED = "Too many failed sign-ins"


@pytest.fixture(autouse=True)
def clean_cache(redis_conn):
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def charlie(tenant_a):
    return make_user("charlie", tenant_a, Role.MEMBER)


def sign_in(client: Client, username: str, password: str, **extra):
    return client.post(LOGIN, {"username": username, "password": password}, **extra)


def fail_five_times(client: Client, username: str = "charlie") -> None:
    for _ in range(5):
        assert WRONG in sign_in(client, username, "not-the-password").content.decode()


@pytest.mark.django_db
def test_a_padded_username_signs_in_when_nothing_is_locked(client, charlie):
    """The premise of the bypass: the form strips the username, so "charlie " is charlie."""
    response = sign_in(client, "charlie ", PASSWORD)

    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(charlie.pk)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "variant",
    [
        "charlie ",
        " charlie",
        "charlie\t",
        "Charlie",
        "CHARLIE ",
        "\uff43\uff48\uff41\uff52\uff4c\uff49\uff45",
    ],
    ids=["trailing-space", "leading-space", "tab", "capital", "upper-padded", "fullwidth"],
)
def test_after_five_failures_no_variant_of_the_name_signs_in(client, charlie, variant):
    fail_five_times(client)

    response = sign_in(client, variant, PASSWORD)

    assert LOCKED in response.content.decode()
    assert "_auth_user_id" not in client.session
    assert LOCKED in sign_in(client, "charlie", PASSWORD).content.decode()


@pytest.mark.django_db
def test_failures_spread_over_variants_add_up(client, charlie):
    for variant in ["charlie", "charlie ", "Charlie", " CHARLIE", "charlie\n"]:
        assert WRONG in sign_in(client, variant, "guess").content.decode()

    assert LOCKED in sign_in(client, "charlie", PASSWORD).content.decode()
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_the_count_is_per_address_and_other_names_are_not_locked(client, charlie, owner):
    fail_five_times(client, "Charlie ")

    assert sign_in(Client(), "charlie", PASSWORD, REMOTE_ADDR="10.0.0.9").status_code == 302
    assert sign_in(client, "olivia", PASSWORD).status_code == 302


@pytest.mark.django_db
def test_a_successful_sign_in_clears_the_count(client, charlie):
    for _ in range(4):
        sign_in(client, "charlie", "guess")
    assert sign_in(client, "charlie", PASSWORD).status_code == 302
    client.logout()

    for _ in range(4):
        assert WRONG in sign_in(client, "charlie", "guess").content.decode()
    assert sign_in(client, "charlie", PASSWORD).status_code == 302


@pytest.mark.django_db
def test_an_absurd_username_is_refused_without_an_error(client, charlie):
    for username in ["x" * 10_000, ""]:
        response = sign_in(client, username, "guess")
        assert response.status_code == 200
    response = sign_in(client, "\x00", "guess")  # refused before the view (common/input_guard.py)
    assert response.status_code == 400
    assert "NUL" in response.content.decode()


@pytest.mark.django_db(transaction=True)
def test_parallel_guesses_get_five_password_checks_in_all(charlie):
    """Each attempt is counted before its password is checked: twelve guesses sent at once get five
    answers about the password and seven lockouts, not twelve checks."""

    def guess(n: int) -> str:
        try:
            return sign_in(Client(), "charlie" + " " * (n % 3), f"guess-{n}").content.decode()
        finally:
            connection.close()  # this thread's own connection

    with ThreadPoolExecutor(max_workers=6) as pool:
        pages = list(pool.map(guess, range(12)))

    assert sum(WRONG in page for page in pages) == 5
    assert sum(LOCKED in page for page in pages) == 7
