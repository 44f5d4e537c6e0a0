"""Keep the `slow` marker true: a test that starts one of Rowbell's processes or a server of its own (an
interpreter running manage.py or a module, gunicorn, redis-server, a PostgreSQL cluster) fails unless it is
marked `slow`, so `pytest -m "not slow"` (the README's fast inner loop) really leaves out every such test.

Short-lived tools (psql, curl, git) and the browser that `browser` tests drive are not counted: they take
milliseconds, or have a marker of their own.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# Program names (the first word of the command, without its directory) that make a test slow.
SLOW_PROGRAMS = ("python", "gunicorn", "honcho", "redis-server", "postgres", "pg_ctl", "initdb", "rqworker")

_started: list[str] | None = None  # commands started by the test running now (None outside a test)
_popen_init = subprocess.Popen.__init__


def is_slow_program(args) -> bool:
    first = args if isinstance(args, str | bytes | os.PathLike) else (list(args) or [""])[0]
    first = os.fsdecode(first).split()[0] if os.fsdecode(first).strip() else ""
    name = Path(first).name
    return first == sys.executable or name.startswith(SLOW_PROGRAMS)


def _recording_init(self, args, *rest, **kwargs):
    if _started is not None and is_slow_program(args):
        _started.append(args if isinstance(args, str) else " ".join(map(os.fsdecode, args)))
    _popen_init(self, args, *rest, **kwargs)


subprocess.Popen.__init__ = _recording_init  # type: ignore[method-assign]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    global _started
    _started = []  # from the fixtures' setup on: a fixture may start the process
    try:
        return (yield)
    finally:
        _started = None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    result = yield  # a test that failed already is not failed again for this
    if _started and not _is_marked(item):
        pytest.fail(
            f"{item.nodeid} started {_started[0]!r} but is not marked slow: add @pytest.mark.slow "
            "(tests that start real processes are left out of the fast inner loop, README 'Tests')",
            pytrace=False,
        )
    return result


def _is_marked(item) -> bool:
    return item.get_closest_marker("slow") is not None or item.get_closest_marker("browser") is not None
