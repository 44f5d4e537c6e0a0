from django.urls import path

from runs.views import messages, run_detail, run_list

app_name = "runs"

urlpatterns = [
    path("activity/", run_list.run_list, name="run_list"),
    path("activity/workflows/<int:workflow_id>/", run_list.run_list, name="workflow_runs"),
    path("activity/runs/<int:run_id>/", run_detail.run_detail, name="run_detail"),
    path("activity/messages/", messages.message_list, name="message_list"),
    path("activity/workflows/<int:workflow_id>/messages/", messages.message_list, name="workflow_messages"),
    path("activity/messages/<int:delivery_id>/", messages.message_detail, name="message_detail"),
]
