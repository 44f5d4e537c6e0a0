"""A `requests` session whose connections go through integrations/outbound.py's checks, for libraries that
speak HTTP with requests (django-anymail's ESP backends).

Each new connection resolves its host once with `outbound.resolve_checked` (refusing loopback, private,
metadata... addresses unless OUTBOUND_ALLOWED_NETWORKS allows them) and connects to that checked address, so a
DNS answer that changes between check and connect cannot slip through. TLS still verifies the host name.
Environment proxies are ignored (the check would otherwise apply to the proxy). A refusal is raised as
`OutboundRefused` through requests and the library, untouched.
"""

from __future__ import annotations

import socket

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from integrations.outbound import pinned_connection


def _new_pinned_conn(conn: HTTPConnection) -> socket.socket:
    timeout = conn.timeout
    if not (timeout is None or isinstance(timeout, int | float)):
        timeout = socket._GLOBAL_DEFAULT_TIMEOUT  # urllib3's "default" sentinel
    try:
        sock = pinned_connection((conn._dns_host, conn.port), timeout, conn.source_address)
    except TimeoutError as exc:
        raise ConnectTimeoutError(conn, f"Connection to {conn.host} timed out.") from exc
    except OSError as exc:
        raise NewConnectionError(conn, f"Failed to establish a new connection: {exc}") from exc
    for option in conn.socket_options or ():
        sock.setsockopt(*option)
    return sock


class _PinnedHTTPConnection(HTTPConnection):
    def _new_conn(self) -> socket.socket:
        return _new_pinned_conn(self)


class _PinnedHTTPSConnection(HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        return _new_pinned_conn(self)


class _PinnedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _PinnedHTTPConnection


class _PinnedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _PinnedHTTPSConnection


class PinnedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _PinnedHTTPPool, "https": _PinnedHTTPSPool}


def checked_session(session: requests.Session | None = None) -> requests.Session:
    """`session` (or a new one) with only the pinned adapter mounted and environment proxies off."""
    session = session or requests.Session()
    session.trust_env = False
    session.adapters.clear()
    adapter = PinnedAdapter()
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session
