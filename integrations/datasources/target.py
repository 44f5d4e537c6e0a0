"""Where a data source may connect: never to the PostgreSQL server that holds Rowbell's own data.

A tenant types the connection URL. Pointed at Rowbell's own server (`127.0.0.1:5432`, its socket
directory, or the same address under another name), a role with broad rights — or `trust` authentication
on a development machine — would let one tenant read every tenant's workflows, messages and secrets
through a data query. So, unless the operator allows it (a single-team install whose app database shares
the server, with `DATA_SOURCE_ALLOW_ROWBELL_SERVER`):

- a URL must name its hosts over TCP: no Unix-socket directory, no empty host (libpq would then use the
  local socket or the server process's PGHOST), no `service` or `passfile` (files on Rowbell's machine);
- no resolved address of a host may be Rowbell's server's on the same port (loopback and this machine's
  own addresses count as one machine);
- the connection goes to the addresses that were checked (`hostaddr`), so a DNS answer that changes
  between the check and the connection cannot slip Rowbell's server in.

Private addresses stay allowed: a customer's database usually lives in a private network.
"""

from __future__ import annotations

import ipaddress
import socket
from functools import lru_cache

import psycopg
from django.conf import settings
from psycopg.conninfo import conninfo_to_dict

# Connection parameters that name files or services on Rowbell's own machine.
LOCAL_FILE_PARAMETERS = ("service", "servicefile", "passfile")
ADVICE = (
    " An operator can allow data sources on Rowbell's own server with DATA_SOURCE_ALLOW_ROWBELL_SERVER=true "
    "when every tenant is trusted (a single-team install)."
)


class DataSourceTargetRefused(Exception):
    """The URL reaches somewhere a data source may not; the message says why and what to do."""


def pinned_conninfo(url: str) -> dict[str, str]:
    """Extra connection parameters (`hostaddr`) that pin the checked addresses; raises when refused."""
    if settings.DATA_SOURCE_ALLOW_ROWBELL_SERVER:
        return {}
    try:
        info = conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        raise DataSourceTargetRefused(f"The connection URL cannot be used: {exc}") from exc
    for name in LOCAL_FILE_PARAMETERS:
        if info.get(name):
            raise DataSourceTargetRefused(
                f"The connection URL may not use “{name}”: write the host, port, user and password in it."
            )
    hosts = _split(info.get("host"))
    if not hosts or any(not host or host.startswith(("/", "@")) for host in hosts):
        raise DataSourceTargetRefused(
            "Name the database's host in the connection URL (postgresql://user:password@host:5432/dbname): "
            "a data source connects over TCP, not through a local socket." + ADVICE
        )
    ports = _split(str(info.get("port") or "")) or ["5432"]
    addresses = []
    for index, host in enumerate(hosts):
        port = _port(ports[index] if len(ports) > 1 else ports[0])
        resolved = _resolve(host, port)
        for address in resolved:
            if _is_rowbell_server(address, port):
                raise DataSourceTargetRefused(
                    f"“{host}:{port}” is the PostgreSQL server that holds Rowbell's own data; a data source "
                    "must be your application's database server." + ADVICE
                )
        addresses.append(str(resolved[0]))
    return {"hostaddr": ",".join(addresses)}


def _split(value: str | int | None) -> list[str]:
    return [part.strip() for part in str(value).split(",")] if value else []


def _port(value: str) -> int:
    try:
        return int(value or 5432)
    except ValueError as exc:
        raise DataSourceTargetRefused(f"The port “{value}” in the connection URL is not a number.") from exc


def _resolve(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise DataSourceTargetRefused(
            f"The host “{host}” was not found. Check the host name in the connection URL."
        ) from exc
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


def _is_rowbell_server(address: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int) -> bool:
    own_addresses, own_port, local = _rowbell_server()
    if port != own_port:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address in own_addresses or (local and _is_this_machine(address))


@lru_cache(maxsize=1)
def _rowbell_server() -> tuple[frozenset, int, bool]:
    """Rowbell's database server: its addresses, its port, and whether it runs on this machine."""
    db = settings.DATABASES["default"]
    host = db.get("HOST") or ""
    port = int(db.get("PORT") or 5432)
    if not host or host.startswith("/"):  # a Unix socket: the server is on this machine
        return frozenset(), port, True
    try:
        addresses = frozenset(_resolve(host, port))
    except DataSourceTargetRefused:
        addresses = frozenset()
    return addresses, port, any(_is_this_machine(address) for address in addresses)


def _is_this_machine(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return address.is_loopback or address.is_unspecified or address in _own_interface_addresses()


@lru_cache(maxsize=1)
def _own_interface_addresses() -> frozenset:
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None)
    except OSError:
        return frozenset()
    return frozenset(ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos)
