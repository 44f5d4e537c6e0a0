"""The inbound hooks that start runs or record what happened to messages (no namespace: `webhook`,
`email_tracking`, `provider_tracking`): a workflow's webhook trigger and a provider's tracking webhook."""

from django.urls import path

from runs.provider_tracking import tracking_webhook
from runs.views.supabase_hook import supabase_auth_email
from runs.views.webhook import WebhookView

urlpatterns = [
    path("hooks/<int:workflow_id>/", WebhookView.as_view(), name="webhook"),
    path("hooks/supabase/<int:workflow_id>/", supabase_auth_email, name="supabase_auth_email"),
    path("hooks/email/<str:token>/", tracking_webhook, name="email_tracking"),
    # Every channel's (the token names the provider, and so its channel); email's keep their first URL.
    path("hooks/providers/<str:token>/", tracking_webhook, name="provider_tracking"),
]
