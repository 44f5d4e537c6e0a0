"""The one row of a catalogue query that always answers one (SELECT current_user, EXISTS (...), a
function of the session): psycopg types `fetchone()` as maybe-None, these queries never are."""

from __future__ import annotations

from typing import Any

import psycopg


def one_row(cursor: psycopg.Cursor[Any]) -> Any:
    """The cursor's row; a psycopg error (handled like any other failed query) if the server sent none."""
    row = cursor.fetchone()
    if row is None:
        raise psycopg.DataError("The server answered no row to a query that always answers one.")
    return row
