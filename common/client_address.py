"""The client's own address behind a reverse proxy: `ClientAddressMiddleware` rewrites REMOTE_ADDR.

Behind nginx or a load balancer every request comes from the proxy's address, so the sign-in lockout
would count every visitor as one and /metrics' allowed networks would admit anyone the proxy forwards.
The proxy appends the address it saw to X-Forwarded-For; anything to the left of it came from the
client and can be forged. So the header is read only when the request's TCP peer is one of
TRUSTED_PROXIES, and the client is the entry PROXY_COUNT places from the right (python-ipware's
right-most rule: with one proxy, the address that proxy appended). PROXY_COUNT=0 (the default) reads no
header at all.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse
from python_ipware import IpWare

FORWARDED_FOR = "HTTP_X_FORWARDED_FOR"
PEER_ADDRESS = "ROWBELL_PEER_ADDR"  # the TCP peer REMOTE_ADDR held before the rewrite, for the logs


def trusted_networks(entries: list[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    try:
        return [ipaddress.ip_network(entry.strip(), strict=False) for entry in entries if entry.strip()]
    except ValueError as error:
        raise ImproperlyConfigured(
            f"TRUSTED_PROXIES: {error}; list networks like 10.0.0.0/8,::1/128"
        ) from error


class ClientAddressMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response
        trusted_networks(settings.TRUSTED_PROXIES)  # a typo fails at start, not on the first request

    def __call__(self, request: HttpRequest) -> HttpResponse:
        client = client_address(request.META) if settings.PROXY_COUNT else None
        if client is not None:
            request.META[PEER_ADDRESS] = request.META["REMOTE_ADDR"]
            request.META["REMOTE_ADDR"] = client
        return self.get_response(request)


def client_address(meta: dict) -> str | None:
    """The client's address from X-Forwarded-For when the peer is a trusted proxy, else None."""
    try:
        peer = ipaddress.ip_address(meta.get("REMOTE_ADDR", ""))
    except ValueError:
        return None
    if not any(peer in network for network in trusted_networks(settings.TRUSTED_PROXIES)):
        return None
    # python-ipware's proxy count is the number of proxies *between* the client and the last one.
    ipware = IpWare(precedence=(FORWARDED_FOR,), proxy_count=max(settings.PROXY_COUNT - 1, 0))
    client, _ = ipware.get_client_ip(meta, strict=False)
    return None if client is None else str(client)
