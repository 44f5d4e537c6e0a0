from django.urls import include, path

urlpatterns = [
    path("settings/email/", include("integrations.email_urls")),
    path("settings/providers/", include("integrations.provider_urls")),
]
