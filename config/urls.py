from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from config import health, metrics, system

handler404 = "config.error_views.not_found"
handler500 = "config.error_views.server_error"

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics_view, name="metrics"),
    path("system/", system.system, name="system"),
    path("admin/rq/", include("django_rq.urls")),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/v1/", include("workflows.api")),
    path("api/v1/", include("runs.api")),
    path("api/v1/", include("consent.api")),
    path("api/v1/", include("runs.bulk.api")),
    path("api/v1/", include("runs.messages_api")),
    path("api/v1/", include("integrations.api")),
    path("", include("runs.hook_urls")),
    path("", include("integrations.urls")),
    path("settings/event-webhooks/", include("runs.events.urls")),
    path("", include("consent.urls")),
    path("", include("runs.urls")),
    path("", include("tenants.urls")),
    path("", include("workflows.datasource_urls")),
    path("", include("workflows.urls")),
]
