"""`.env.example` documents every variable the settings read, so an operator can see all the knobs."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_setting_read_from_the_environment_is_in_env_example():
    read = set(
        re.findall(r'env(?:\.\w+)?\(\s*"([A-Z][A-Z0-9_]*)"', (ROOT / "config/settings.py").read_text())
    )
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", (ROOT / ".env.example").read_text(), re.M))
    assert len(read) > 30  # the pattern still finds the settings
    assert read - documented == set(), "add these to .env.example, with a comment"
