"""The email settings pages under /settings/email/ (integrations/urls.py includes them)."""

from django.urls import path

from integrations import email_views as views

app_name = "email"

urlpatterns = [
    path("", views.email_settings, name="settings"),
    path("providers/new/", views.provider_add, name="provider_add"),
    path("providers/<int:provider_id>/", views.provider_detail, name="provider"),
    path("providers/<int:provider_id>/test/", views.provider_test, name="provider_test"),
    path("providers/<int:provider_id>/delete/", views.provider_delete, name="provider_delete"),
    path("senders/new/", views.sender_form, name="sender_add"),
    path("senders/<int:sender_id>/", views.sender_form, name="sender"),
    path("senders/<int:sender_id>/delete/", views.sender_delete, name="sender_delete"),
]
