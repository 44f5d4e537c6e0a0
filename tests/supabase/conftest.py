"""Fixtures of the Supabase tests: the engine's clock and SMTP sink, and the listener's short intervals."""

from tests.engine.conftest import clock, smtp  # noqa: F401 (fixtures)
from tests.triggers.conftest import fast_listener  # noqa: F401 (fixture)
