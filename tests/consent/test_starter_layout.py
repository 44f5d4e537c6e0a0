"""The layouts page offers a starter layout (#21): one click makes it the default; nothing to write first."""

from __future__ import annotations

import re
from html import unescape

import pytest
from django.urls import reverse

from consent.layouts import STARTER_LAYOUT
from consent.models import EmailLayout
from tests.support import signed_in


@pytest.mark.django_db
def test_the_empty_layouts_page_offers_the_starter_and_one_click_makes_it_the_default(client, owner):
    page = signed_in(client, owner).get(reverse("consent:layouts")).content.decode()
    assert "Use the starter layout" in page
    form = re.search(
        r'<form method="post" action="([^"]+)">(.*?)</form>', page[page.index("starter-layout") :], re.S
    )
    fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', form.group(2)))
    assert unescape(fields["html"]) == STARTER_LAYOUT
    response = client.post(form.group(1), {**{k: unescape(v) for k, v in fields.items()}})
    assert response.status_code == 302
    layout = EmailLayout.objects.get()
    assert layout.name == "Starter" and layout.is_default and layout.html == STARTER_LAYOUT.strip()
    assert "Use the starter layout" not in client.get(reverse("consent:layouts")).content.decode()
