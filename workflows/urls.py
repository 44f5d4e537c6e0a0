from django.urls import path

from workflows.views import builder, dashboard, panel, publishing, sending, supabase, webhook, workflow_list

app_name = "workflows"

urlpatterns = [
    path("", dashboard.dashboard, name="dashboard"),
    path("settings/sending/", sending.sending_defaults, name="sending_defaults"),
    path("supabase/", supabase.supabase_setup, name="supabase"),
    path("supabase/auth-emails/new/", supabase.create_auth_email_workflow, name="supabase_starter"),
    path("workflows/", workflow_list.workflow_list, name="list"),
    path("workflows/new/", workflow_list.workflow_create, name="create"),
    path("workflows/<int:workflow_id>/", builder.builder, name="builder"),
    path("workflows/<int:workflow_id>/rename/", workflow_list.workflow_rename, name="rename"),
    path("workflows/<int:workflow_id>/duplicate/", workflow_list.workflow_duplicate, name="duplicate"),
    path("workflows/<int:workflow_id>/archive/", workflow_list.workflow_archive, name="archive"),
    path("workflows/<int:workflow_id>/steps/add/", builder.add_step, name="add_step"),
    path("workflows/<int:workflow_id>/steps/<int:step_id>/", builder.step_panel, name="step_panel"),
    path("workflows/<int:workflow_id>/steps/<int:step_id>/save/", panel.save_step, name="save_step"),
    path("workflows/<int:workflow_id>/steps/<int:step_id>/delete/", builder.delete_step, name="delete_step"),
    path("workflows/<int:workflow_id>/steps/<int:step_id>/paths/", builder.branch_path, name="branch_path"),
    path("workflows/<int:workflow_id>/unpublish/", publishing.unpublish_workflow, name="unpublish"),
    path("workflows/<int:workflow_id>/webhook/secret/", webhook.reveal_secret, name="webhook_secret"),
    path("workflows/<int:workflow_id>/webhook/rotate/", webhook.rotate_secret, name="webhook_rotate"),
    path("workflows/<int:workflow_id>/webhook/test/", webhook.send_test, name="webhook_test"),
    path("workflows/<int:workflow_id>/versions/", publishing.version_list, name="versions"),
    path("workflows/<int:workflow_id>/versions/<int:version_id>/", publishing.version_detail, name="version"),
    path(
        "workflows/<int:workflow_id>/versions/<int:version_id>/restore/",
        publishing.version_restore,
        name="restore",
    ),
]
