"""A tenant's providers per channel under /settings/providers/<channel>/ (integrations/urls.py includes
them); email's are also at their old addresses under /settings/email/ (integrations/email_urls.py)."""

from django.urls import path

from integrations import provider_views as views

app_name = "providers"

urlpatterns = [
    path("<slug:channel>/", views.provider_list, name="settings"),
    path("<slug:channel>/new/", views.provider_add, name="provider_add"),
    path("<slug:channel>/<int:provider_id>/", views.provider_detail, name="provider"),
    path("<slug:channel>/<int:provider_id>/test/", views.provider_test, name="provider_test"),
    path("<slug:channel>/<int:provider_id>/delete/", views.provider_delete, name="provider_delete"),
]
