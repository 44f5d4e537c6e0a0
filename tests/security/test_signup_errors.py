"""Sign-up errors are a list, one per line (#21): a password refused for several reasons lists each."""

from __future__ import annotations

import re

from django.urls import reverse


def test_each_sign_up_error_is_its_own_line(client, db):
    page = client.post(
        reverse("tenants:signup"),
        {"organisation": "", "username": "x", "email": "not-an-email", "password": "123"},
    )
    html = page.content.decode()
    lists = re.findall(r'<ul class="error errors" role="alert">(.*?)</ul>', html, re.S)
    items = [re.findall(r"<li>(.*?)</li>", found, re.S) for found in lists]
    password = next(found for found in items if any("password" in line.lower() for line in found))
    assert len(password) >= 2, password  # too short, too common, entirely numeric: one line each
    assert all(len(found) >= 1 for found in items) and len(items) >= 2
    assert '<span class="error"' not in html
