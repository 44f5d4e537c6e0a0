from django.urls import path

from consent.views import public, settings_pages

app_name = "consent"

urlpatterns = [
    path("email/unsubscribe/<str:token>/", public.unsubscribe_page, name="unsubscribe"),
    path("email/preferences/<str:token>/", public.preferences_page, name="preferences"),
    path("settings/email/topics/", settings_pages.topics, name="topics"),
    path("settings/email/topics/<int:topic_id>/delete/", settings_pages.delete_topic, name="delete_topic"),
    path("settings/email/layouts/", settings_pages.layouts, name="layouts"),
    path("settings/email/layouts/new/", settings_pages.edit_layout, name="new_layout"),
    path("settings/email/layouts/<int:layout_id>/", settings_pages.edit_layout, name="edit_layout"),
    path(
        "settings/email/layouts/<int:layout_id>/delete/", settings_pages.delete_layout, name="delete_layout"
    ),
    path("settings/email/suppressions/", settings_pages.suppressions, name="suppressions"),
    path(
        "settings/email/suppressions/export.csv",
        settings_pages.export_suppressions,
        name="export_suppressions",
    ),
    path(
        "settings/email/suppressions/<int:suppression_id>/delete/",
        settings_pages.delete_suppression,
        name="delete_suppression",
    ),
]
