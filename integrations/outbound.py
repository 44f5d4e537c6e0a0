"""Every HTTP request Rowbell makes on a tenant's behalf goes through here, so that none reaches inside.

A tenant chooses the URLs of HTTP request steps, Slack webhooks and event-webhook endpoints. Left
unchecked, `http://169.254.169.254/...` reads the cloud's instance credentials and `http://127.0.0.1:...`
reaches Rowbell's own services (server-side request forgery). So:

- Only http and https. No proxy from the environment (the check would then apply to the proxy's address).
- The host is resolved (getaddrinfo, which also reads `2130706433`, `0x7f.1` and `[::ffff:127.0.0.1]`), and
  if ANY of its addresses is loopback, private, link-local, multicast, unspecified, reserved, shared
  (100.64/10), otherwise not globally routable, or a cloud metadata address, the request is refused with
  `OutboundRefused` (a permanent error that says why) unless the address is inside one of the networks of
  OUTBOUND_ALLOWED_NETWORKS (CIDRs, empty by default).
- The connection goes to the address that was checked (pinned): the name is not resolved a second time, so
  a DNS answer that changes between check and connect (rebinding) cannot slip a private address through.
  TLS still verifies the certificate against the host name.
- Redirects are checked the same way: each hop's scheme here and its address when its pinned connection
  opens. Event webhooks (`follow_redirects=False`) do not follow them at all.

One HTTP client for all of it: a `requests` session whose connections are pinned (`checked_session`). The
HTTP request step, Slack and event webhooks call `request()`; django-anymail's ESP backends, which speak
requests themselves, get the same session class. Environment proxies and .netrc are ignored.

`check_url_at_save(url)` is the builder's early, best-effort warning for a URL whose host is written out
literally; the check at send time is the one that counts (a template or a DNS change can change the host).
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import threading
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
SCHEMES = ("http", "https")
# Instance-metadata services answer credentials on these (AWS/GCP/Azure/OpenStack, AWS IPv6, Alibaba).
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")
)
# How long the builder waits for DNS when it checks a URL on save (the send-time check has no such limit).
SAVE_CHECK_DNS_SECONDS = 2.0


class OutboundRefused(Exception):
    """A request Rowbell will not make; permanent, and its message says why and what to do."""

    def __init__(self, message: str):
        self.message = message
        super().__init__(message)


@functools.lru_cache(maxsize=8)
def _parse_networks(cidrs: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    try:
        return tuple(ipaddress.ip_network(cidr.strip(), strict=False) for cidr in cidrs if cidr.strip())
    except ValueError as exc:
        raise ImproperlyConfigured(f"OUTBOUND_ALLOWED_NETWORKS: {exc}") from exc


def allowed_networks() -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return _parse_networks(tuple(settings.OUTBOUND_ALLOWED_NETWORKS))


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (::ffff:127.0.0.1, 6to4, Teredo), if any."""
    if isinstance(address, ipaddress.IPv6Address):
        return address.ipv4_mapped or address.sixtofour or (address.teredo[1] if address.teredo else None)
    return None


def refusal(address: IPAddress) -> str | None:
    """Why Rowbell refuses to connect to `address` (a short class name), or None when it may."""
    if any(address in network for network in allowed_networks()):
        return None
    inner = _embedded_ipv4(address)
    if inner is not None:
        return refusal(inner)
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    for name, denied in (
        ("a loopback address", address.is_loopback),
        ("an unspecified address", address.is_unspecified),
        ("a link-local address", address.is_link_local),
        ("a multicast address", address.is_multicast),
        ("a private address", address.is_private),
        ("a reserved address", address.is_reserved),
    ):
        if denied:
            return name
    if not address.is_global:
        return "not a public address"
    return None


def _refused(host: str, address: IPAddress, why: str) -> OutboundRefused:
    shown = host if host == str(address) else f"{host} ({address})"
    return OutboundRefused(
        f"Refused to call {shown}: it is {why}. Rowbell only calls public internet addresses; "
        "an operator can allow a network with OUTBOUND_ALLOWED_NETWORKS."
    )


def _address(sockaddr: tuple) -> IPAddress:
    return ipaddress.ip_address(sockaddr[0].split("%", 1)[0])  # drop an IPv6 zone ("fe80::1%eth0")


def resolve_checked(host: str, port: int) -> list[tuple]:
    """getaddrinfo for `host`, refused as a whole if any address is refused: [(family, type, proto, addr)]."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise OSError(f"cannot resolve {host}: {exc}") from exc
    for _family, _type, _proto, _name, sockaddr in infos:
        address = _address(sockaddr)
        why = refusal(address)
        if why:
            raise _refused(host, address, why)
    return [(family, type_, proto, sockaddr) for family, type_, proto, _name, sockaddr in infos]


# socket.create_connection's "no timeout given" (private, so typeshed does not declare it).
DEFAULT_TIMEOUT = socket._GLOBAL_DEFAULT_TIMEOUT  # type: ignore[attr-defined]


def pinned_connection(address: tuple[str, int], timeout=DEFAULT_TIMEOUT, source_address=None):
    """socket.create_connection, but to an address checked by `resolve_checked` (no second lookup)."""
    host, port = address
    error: OSError | None = None
    for family, type_, proto, sockaddr in resolve_checked(host, port):
        sock = socket.socket(family, type_, proto)
        try:
            if timeout is not DEFAULT_TIMEOUT:
                sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            sock.close()
            error = exc
    raise error or OSError(f"cannot resolve {host}")


def check_scheme(url: str) -> None:
    scheme = urlsplit(url).scheme.lower()
    if scheme not in SCHEMES:
        raise OutboundRefused(f"Refused to call {url[:100]}: only http:// and https:// URLs can be called.")


def _new_pinned_conn(conn: HTTPConnection) -> socket.socket:
    """urllib3's new connection, to an address `pinned_connection` checked, with urllib3's own errors."""
    timeout = conn.timeout
    if not (timeout is None or isinstance(timeout, int | float)):
        timeout = DEFAULT_TIMEOUT  # urllib3's "default" sentinel
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
    """`session` (or a new one) with only the pinned adapter mounted, for http and https (a redirect to
    another scheme finds no adapter), and environment proxies off. A refusal is raised as
    `OutboundRefused` through requests, untouched."""
    session = session or requests.Session()
    session.trust_env = False
    session.adapters.clear()
    adapter = PinnedAdapter()
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


_sessions = threading.local()


def _session() -> requests.Session:
    """This thread's checked session: its pinned connections are kept alive between requests."""
    session = getattr(_sessions, "session", None)
    if session is None:
        session = _sessions.session = checked_session()
    return session


@dataclass(frozen=True)
class Reply:
    """What a server answered: any status (a 4xx or 5xx too), headers, and at most `max_bytes` of body."""

    status: int
    reason: str
    headers: dict[str, str]
    text: str


def request(
    method: str,
    url: str,
    *,
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float,
    follow_redirects: bool = True,
    max_bytes: int = 1_000_000,
) -> Reply:
    """Call `url` with every address checked, also after each redirect (requests' rules: at most 30, a
    POST becomes a GET on 301-303). Raises OutboundRefused when refused, and requests' RequestException
    when no answer came (its InvalidURL, a ValueError too, for a malformed URL)."""
    check_scheme(url)
    try:
        response = _session().request(
            method,
            url,
            data=data,
            headers=headers,
            timeout=timeout,
            allow_redirects=follow_redirects,
            stream=True,
        )
    except requests.exceptions.InvalidSchema as exc:  # a redirect to file:, ftp:...
        raise OutboundRefused(
            f"Refused to follow a redirect from {url[:100]}: only http:// and https:// URLs can be called."
        ) from exc
    with response:
        body = response.raw.read(max_bytes, decode_content=True) or b""
        text = body.decode(errors="replace")
        return Reply(response.status_code, response.reason or "", dict(response.headers), text)


def check_url_at_save(url: str) -> str | None:
    """A message when `url`'s host, written out literally, resolves to a refused address; else None.

    Best effort: a host built by a template, or one DNS cannot answer now (within SAVE_CHECK_DNS_SECONDS),
    passes here and is checked when the request is sent.
    """
    url = (url or "").strip()
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return None  # the field's own validation reports a malformed URL
    if not host or "{" in parts.netloc or "}" in parts.netloc:
        return None
    answer: list = []

    def lookup() -> None:
        try:
            resolve_checked(host, port or 443)
        except OutboundRefused as exc:
            answer.append(exc.message)
        except OSError:
            pass

    worker = threading.Thread(target=lookup, daemon=True, name="outbound-save-check")
    worker.start()
    worker.join(SAVE_CHECK_DNS_SECONDS)
    return answer[0] if answer else None
