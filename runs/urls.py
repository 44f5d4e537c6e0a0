from django.urls import path

from runs.email_body import email_body
from runs.views import actions, bulk, messages, preview, publishing, run_detail, run_list, testing

app_name = "runs"

urlpatterns = [
    path("activity/", run_list.run_list, name="run_list"),
    path("activity/workflows/<int:workflow_id>/", run_list.run_list, name="workflow_runs"),
    path("activity/runs/<int:run_id>/", run_detail.run_detail, name="run_detail"),
    path("activity/messages/", messages.message_list, name="message_list"),
    path("activity/workflows/<int:workflow_id>/messages/", messages.message_list, name="workflow_messages"),
    path("activity/messages/chart/", messages.messages_chart, name="messages_chart"),
    path(
        "activity/workflows/<int:workflow_id>/messages/chart/",
        messages.messages_chart,
        name="workflow_messages_chart",
    ),
    path(
        "activity/workflows/<int:workflow_id>/messages/counts/",
        messages.tracking_counts,
        name="workflow_tracking_counts",
    ),
    path("activity/messages/<int:delivery_id>/", messages.message_detail, name="message_detail"),
    path("activity/executions/<int:execution_id>/retry/", actions.retry, name="retry_execution"),
    path("activity/runs/<int:run_id>/cancel/", actions.cancel, name="cancel_run"),
    path("activity/runs/<int:run_id>/cancel-key/", actions.cancel_key, name="cancel_key"),
    path("activity/cancels/<int:tombstone_id>/undo/", actions.undo_key_cancel, name="undo_key_cancel"),
    path("activity/runs/<int:run_id>/replay/", actions.replay, name="replay_run"),
    path("activity/runs/<int:run_id>/skip-waits/", actions.skip_waits, name="skip_waits"),
    path("activity/messages/release/", actions.release, name="release_messages"),
    path("activity/messages/<int:delivery_id>/resolve/", actions.resolve, name="resolve_uncertain"),
    path("activity/messages/discard/", actions.discard, name="discard_messages"),
    path("activity/bulk/", bulk.bulk_list, name="bulk_list"),
    path("activity/bulk/new/", bulk.bulk_dialog, name="bulk_dialog"),
    path("activity/bulk/count/", bulk.bulk_count, name="bulk_count"),
    path("activity/bulk/start/", bulk.bulk_start, name="bulk_start"),
    path("activity/bulk/<int:operation_id>/", bulk.bulk_detail, name="bulk_detail"),
    path("workflows/<int:workflow_id>/test/", testing.test_workflow, name="test_workflow"),
    path("steps/<int:step_id>/preview/", preview.step_preview, name="step_preview"),
    path("workflows/<int:workflow_id>/publish/", publishing.publish_dialog, name="publish_dialog"),
    path("workflows/<int:workflow_id>/publish/confirm/", publishing.publish_workflow, name="publish"),
    path("workflows/<int:workflow_id>/publish/previews/", publishing.preview_start, name="preview_start"),
    path(
        "workflows/<int:workflow_id>/publish/previews/<int:preview_id>/",
        publishing.preview_status,
        name="preview_status",
    ),
    path(
        "workflows/<int:workflow_id>/publish/previews/<int:preview_id>/csv/",
        publishing.preview_csv,
        name="preview_csv",
    ),
    path("email-body/<str:key>/", email_body, name="email_body"),
]
