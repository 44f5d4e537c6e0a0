from django.urls import include, path

from integrations.email_tracking import tracking_webhook
from integrations.webhooks import WebhookView

urlpatterns = [
    path("hooks/<int:workflow_id>/", WebhookView.as_view(), name="webhook"),
    path("hooks/email/<str:token>/", tracking_webhook, name="email_tracking"),
    path("settings/event-webhooks/", include("integrations.events.urls")),
    path("settings/email/", include("integrations.email_urls")),
]
