"""Production behind a reverse proxy: the client's address comes from X-Forwarded-For only when the
request's peer is a trusted proxy, and only the entry the proxy appended counts (what the client wrote
to the left of it is ignored). The sign-in lockout and /metrics see that address."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.test import Client

from tests.security.test_signin_lockout import LOCKED, WRONG, sign_in
from tests.support import PASSWORD, make_user

PROXY = "127.0.0.1"


@pytest.fixture(autouse=True)
def behind_one_proxy(settings, redis_conn):
    settings.PROXY_COUNT = 1
    settings.TRUSTED_PROXIES = ["127.0.0.1/32", "::1/128"]
    cache.clear()


@pytest.fixture
def charlie(tenant_a):
    return make_user("charlie", tenant_a, "owner")


def through_proxy(client_sent: str = "", proxy_saw: str = "203.0.113.9") -> dict:
    """What nginx forwards: the client's own X-Forwarded-For with the address nginx saw appended."""
    chain = f"{client_sent}, {proxy_saw}" if client_sent else proxy_saw
    return {"REMOTE_ADDR": PROXY, "HTTP_X_FORWARDED_FOR": chain}


def seen_address(client: Client, **extra) -> str:
    """The address the sign-in lockout counts, read back through its effect on the counter."""
    response = client.get("/healthz", **extra)
    return response.wsgi_request.META["REMOTE_ADDR"]


@pytest.mark.django_db
def test_the_address_the_proxy_appended_is_the_clients():
    assert seen_address(Client(), **through_proxy()) == "203.0.113.9"
    assert seen_address(Client(), **through_proxy(client_sent="6.6.6.6")) == "203.0.113.9"


@pytest.mark.django_db
def test_a_request_not_from_a_trusted_proxy_keeps_its_own_address():
    forged = {"REMOTE_ADDR": "198.51.100.7", "HTTP_X_FORWARDED_FOR": "203.0.113.9"}
    assert seen_address(Client(), **forged) == "198.51.100.7"


@pytest.mark.django_db
def test_without_a_proxy_count_the_header_is_never_read(settings):
    settings.PROXY_COUNT = 0
    assert seen_address(Client(), **through_proxy()) == PROXY


@pytest.mark.django_db
def test_two_proxies_take_the_address_the_outer_one_appended(settings):
    settings.PROXY_COUNT = 2  # a load balancer, then nginx on this host
    extra = {"REMOTE_ADDR": PROXY, "HTTP_X_FORWARDED_FOR": "6.6.6.6, 203.0.113.9, 10.0.0.2"}
    assert seen_address(Client(), **extra) == "203.0.113.9"


@pytest.mark.django_db
def test_a_garbled_header_keeps_the_proxys_address():
    assert seen_address(Client(), REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR="not-an-address") == PROXY


@pytest.mark.django_db
def test_the_lockout_counts_each_client_behind_the_proxy_on_its_own(charlie):
    guesser, user = Client(), Client()
    for _ in range(5):
        assert WRONG in sign_in(guesser, "charlie", "nope", **through_proxy()).content.decode()
    assert LOCKED in sign_in(guesser, "charlie", PASSWORD, **through_proxy()).content.decode()

    # Another visitor behind the same proxy is not locked out by the first one's failures.
    response = sign_in(user, "charlie", PASSWORD, **through_proxy(proxy_saw="198.51.100.20"))
    assert response.status_code == 302


@pytest.mark.django_db
def test_a_forged_header_does_not_give_a_guesser_fresh_addresses(charlie):
    guesser = Client()
    for n in range(5):
        extra = through_proxy(client_sent=f"192.0.2.{n}")
        assert WRONG in sign_in(guesser, "charlie", "nope", **extra).content.decode()
    assert (
        LOCKED
        in sign_in(guesser, "charlie", PASSWORD, **through_proxy(client_sent="192.0.2.99")).content.decode()
    )


@pytest.mark.django_db
def test_failures_from_many_addresses_add_up_to_an_account_wide_cap(charlie, settings):
    settings.SIGNIN_ACCOUNT_MAX_FAILURES = 8
    for n in range(8):  # 2 failures from each of 4 addresses: under the per-address limit of 5
        extra = through_proxy(proxy_saw=f"198.51.100.{n // 2}")
        assert WRONG in sign_in(Client(), "charlie", "nope", **extra).content.decode()

    response = sign_in(Client(), "charlie", PASSWORD, **through_proxy(proxy_saw="198.51.100.50"))
    assert LOCKED in response.content.decode()


@pytest.mark.django_db
def test_successful_sign_ins_do_not_use_up_the_account_wide_cap(charlie, settings):
    settings.SIGNIN_ACCOUNT_MAX_FAILURES = 3
    for _ in range(5):
        assert sign_in(Client(), "charlie", PASSWORD, **through_proxy()).status_code == 302


@pytest.mark.django_db
def test_metrics_through_the_proxy_need_the_token(settings):
    settings.METRICS_TOKEN = "s3cret-token"
    # Behind a same-host proxy every connection comes from 127.0.0.1, which METRICS_ALLOWED_NETWORKS allows.
    assert Client().get("/metrics", **through_proxy()).status_code == 404
    token = {"HTTP_AUTHORIZATION": "Bearer s3cret-token"}
    assert Client().get("/metrics", **through_proxy(), **token).status_code == 200
    assert Client(REMOTE_ADDR=PROXY).get("/metrics").status_code == 200  # a scrape on the host itself


@pytest.mark.django_db
def test_a_misspelled_trusted_network_is_said_at_start(settings):
    from django.core.exceptions import ImproperlyConfigured

    from common.client_address import ClientAddressMiddleware

    settings.TRUSTED_PROXIES = ["10.0.0.0/33"]
    with pytest.raises(ImproperlyConfigured, match="TRUSTED_PROXIES"):
        ClientAddressMiddleware(lambda request: None)
