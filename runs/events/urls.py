"""The event webhooks page (namespace `events`), under /settings/event-webhooks/ (config/urls.py)."""

from django.urls import path

from runs.events import views

app_name = "events"

urlpatterns = [
    path("", views.endpoint_list, name="endpoint_list"),
    path("new/", views.endpoint_add, name="endpoint_add"),
    path("<int:endpoint_id>/edit/", views.endpoint_edit, name="endpoint_edit"),
    path("<int:endpoint_id>/delete/", views.endpoint_delete, name="endpoint_delete"),
    path("<int:endpoint_id>/rotate/", views.endpoint_rotate, name="endpoint_rotate"),
    path("<int:endpoint_id>/test/", views.endpoint_test, name="endpoint_test"),
]
