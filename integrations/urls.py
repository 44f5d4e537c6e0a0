from django.urls import include, path

from integrations.webhooks import WebhookView

urlpatterns = [
    path("hooks/<int:workflow_id>/", WebhookView.as_view(), name="webhook"),
    path("settings/event-webhooks/", include("integrations.events.urls")),
]
