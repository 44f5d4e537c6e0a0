from django.urls import path

from integrations.webhooks import WebhookView

urlpatterns = [
    path("hooks/<int:workflow_id>/", WebhookView.as_view(), name="webhook"),
]
