"""Secrets are encrypted at rest and never shown back whole."""

import pytest
from django.db import connection

from integrations.crypto import decrypt, encrypt, mask
from integrations.models import DataSource
from workflows.models import Workflow

URL = "postgresql://app:s3cret-Passw0rd@db.internal:5432/app"


def raw_column(table: str, column: str, pk: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table} WHERE id = %s", [pk])
        return cursor.fetchone()[0]


def test_connection_url_is_encrypted_in_the_database(tenant_a):
    source = DataSource.objects.create(tenant=tenant_a, name="app", connection_url=URL)
    stored = raw_column("integrations_datasource", "connection_url", source.pk)
    assert "s3cret" not in stored and "db.internal" not in stored
    assert DataSource.objects.get(pk=source.pk).connection_url == URL
    assert source.masked_url == "postgresql://app:••••••••@db.internal:5432/app"


def test_webhook_secret_is_generated_and_encrypted(tenant_a):
    workflow = Workflow.objects.create(tenant=tenant_a, name="hooks")
    secret = Workflow.objects.get(pk=workflow.pk).webhook_secret
    assert len(secret) >= 40
    assert secret not in raw_column("workflows_workflow", "webhook_secret", workflow.pk)


def test_a_token_from_another_key_is_refused_with_a_clear_error(settings):
    from integrations import crypto

    token = encrypt("hello")
    assert decrypt(token) == "hello"
    settings.ENCRYPTION_KEYS = ["Vb3x0kQ8H2fZr2mJd6fX0s3bK4n7pQ9uW1yA5cE8gHk="]
    crypto._fernet.cache_clear()
    try:
        with pytest.raises(ValueError, match="ENCRYPTION_KEYS"):
            decrypt(token)
    finally:
        settings.ENCRYPTION_KEYS = []
        crypto._fernet.cache_clear()


def test_key_rotation_keeps_old_secrets_readable(settings):
    from cryptography.fernet import Fernet

    from integrations import crypto

    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.ENCRYPTION_KEYS = [old]
    crypto._fernet.cache_clear()
    token = encrypt("rotate me")
    settings.ENCRYPTION_KEYS = [new, old]
    crypto._fernet.cache_clear()
    try:
        assert decrypt(token) == "rotate me"
    finally:
        settings.ENCRYPTION_KEYS = []
        crypto._fernet.cache_clear()


def test_mask_never_shows_the_whole_secret():
    assert mask("xoxb-1234567890-abcdef") == "xoxb••••••••cdef"
    assert mask("short") == "••••••••"
    assert mask("") == ""
