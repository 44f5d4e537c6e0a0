"""The data-source pages (namespace `integrations`, where they started): they live with workflows because
they show and reinstall the published workflows' triggers in each database."""

from django.urls import path

from integrations import setup_views
from workflows.views import capture
from workflows.views import datasources as views

app_name = "integrations"

urlpatterns = [
    path("datasources/", views.datasource_list, name="datasource_list"),
    path("datasources/new/", views.datasource_add, name="datasource_add"),
    path("datasources/setup/sql/", setup_views.setup_sql_panel, name="setup_sql"),
    path("datasources/setup/schemas/", setup_views.setup_schemas, name="setup_schemas"),
    path("datasources/setup/check/", setup_views.setup_check, name="setup_check"),
    path("datasources/<int:datasource_id>/", views.datasource_detail, name="datasource_detail"),
    path("datasources/<int:datasource_id>/edit/", views.datasource_edit, name="datasource_edit"),
    path("datasources/<int:datasource_id>/test/", views.datasource_test, name="datasource_test"),
    path("datasources/<int:datasource_id>/tables/", views.datasource_tables, name="datasource_tables"),
    path("datasources/<int:datasource_id>/role/", views.datasource_role, name="datasource_role"),
    path("datasources/<int:datasource_id>/columns/", views.datasource_columns, name="datasource_columns"),
    path("datasources/<int:datasource_id>/delete/", views.datasource_delete, name="datasource_delete"),
    path("datasources/<int:datasource_id>/capture/", capture.datasource_capture, name="datasource_capture"),
]
