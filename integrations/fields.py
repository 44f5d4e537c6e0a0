"""A text field whose value is stored encrypted and read back in the clear, in Python only."""

from __future__ import annotations

from django.db import models

from integrations.crypto import decrypt, encrypt


class EncryptedTextField(models.TextField):
    """Stores Fernet tokens. Lookups other than isnull cannot work on ciphertext, so don't filter on it."""

    def from_db_value(self, value, expression, connection):
        if value is None or value == "":
            return value
        return decrypt(value)

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if value is None or value == "":
            return value
        return encrypt(value)
