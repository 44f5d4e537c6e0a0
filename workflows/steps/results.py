"""What a step's `execute` returns and raises (the engine's side of the step-kind contract).

- A list of items: usually `[item]` (passes on one item under the same item key) or `[]` (ends the
  path, like a false condition or a query with no rows).
- `FanOut(pairs)`: an iterable of `(key, item)`; each item gets the item key `<parent key>/<key>`. It may
  be a generator (a server-side cursor): the engine writes children in chunks as it reads.
- `Routed(path, items)`: the items go on only to the children on that path (a branch's chosen path);
  no items means the item's path ends here (filtered).
- `Skipped(items, summary)`: the step did not do its work, on purpose (a wait skipped in a test run, a
  message whose recipient is suppressed or unsubscribed); the execution reads "skipped".
- `Deferred(until, summary)`: the item is held and the step runs it again at `until` (a throttle's
  overflow waiting for the next free slot, a wait whose time moved); the execution stays pending with the
  summary as its output.
A step that produces no items ends as `filtered`, not `succeeded`: the run page then says so.
- `Filtered(summary)`: the item's path ends here, on purpose, with the reason in the output (a wait whose
  row was deleted, or no longer matches).
- raise `integrations.failures.Failure(message, permanent=...)`: transient failures are retried with
  backoff, permanent ones fail the execution at once with the message shown to the user.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass
class FanOut:
    pairs: Iterable[tuple[str, dict[str, Any]]]
    # What the execution's output shows (a fan-out's items are its children, not its output).
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass
class Routed:
    path: str
    items: list[dict[str, Any]]
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass
class Skipped:
    items: list[dict[str, Any]]
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass
class Deferred:
    until: datetime
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass
class Filtered:
    summary: dict[str, Any] = field(default_factory=dict)
