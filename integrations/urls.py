from django.urls import include, path

urlpatterns = [
    path("settings/event-webhooks/", include("integrations.events.urls")),
    path("settings/email/", include("integrations.email_urls")),
]
