"""Small helpers shared by test packages (fixtures live in the conftest files)."""

from __future__ import annotations

import socket

# Debian's Chromium, headless, as root, on a machine with no network but loopback.
CHROMIUM_PATH = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def launch_chromium(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM_PATH, args=CHROMIUM_ARGS)


def free_port() -> int:
    """A TCP port nobody listens on right now, for a server the test starts."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def subprocess_database_url() -> str:
    """DATABASE_URL for a process the test starts (a worker, the listener), pointing at the test database.

    A unix-socket directory (the embedded server) goes percent-encoded in the host's place.
    """
    from urllib.parse import quote

    from django.conf import settings

    db = settings.DATABASES["default"]
    host = db["HOST"] or "127.0.0.1"
    host = quote(host, safe="") if host.startswith("/") else host
    auth = db["USER"] or "postgres"
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"], safe="")
    return f"postgres://{auth}@{host}:{db['PORT'] or 5432}/{db['NAME']}"
