"""The email settings pages under /settings/email/ (integrations/urls.py includes them): the senders, and
email's providers at the addresses they always had, served by the pages of every channel's providers
(integrations/provider_views.py) with `channel="email"`."""

from django.urls import path

from integrations import email_views as views
from integrations import provider_views

app_name = "email"
EMAIL = {"channel": "email"}

urlpatterns = [
    path("", views.email_settings, EMAIL, name="settings"),
    path("providers/new/", provider_views.provider_add, EMAIL, name="provider_add"),
    path("providers/<int:provider_id>/", provider_views.provider_detail, EMAIL, name="provider"),
    path("providers/<int:provider_id>/test/", provider_views.provider_test, EMAIL, name="provider_test"),
    path(
        "providers/<int:provider_id>/delete/", provider_views.provider_delete, EMAIL, name="provider_delete"
    ),
    path("senders/new/", views.sender_form, name="sender_add"),
    path("senders/<int:sender_id>/", views.sender_form, name="sender"),
    path("senders/<int:sender_id>/delete/", views.sender_delete, name="sender_delete"),
]
