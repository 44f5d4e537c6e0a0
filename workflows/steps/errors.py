"""The error a step's settings raise when they are not usable."""

from __future__ import annotations


class ConfigError(Exception):
    """A step's config is not usable. `errors` maps each field to a message a person can act on."""

    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__("; ".join(f"{field}: {message}" for field, message in errors.items()))
