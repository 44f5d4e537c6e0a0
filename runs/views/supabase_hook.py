"""`POST /hooks/supabase/<workflow id>/`: Supabase's Send Email hook (runs/supabase_hooks.py says what
it answers and why). No session, no CSRF: the Standard Webhooks signature is the authentication."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from integrations.inbound import InboundRejected, read_body
from runs.supabase_hooks import auth_email_workflow, receive_auth_email


@csrf_exempt
@require_POST
def supabase_auth_email(request: HttpRequest, workflow_id: int) -> JsonResponse:
    try:
        workflow = auth_email_workflow(workflow_id)
        accepted = receive_auth_email(workflow, read_body(request), request.headers)
    except InboundRejected as rejected:
        # Supabase shows {"error": {"http_code", "message"}} from a hook's failure.
        error = {"http_code": rejected.status_code, "message": rejected.detail}
        return JsonResponse({"error": error, "detail": rejected.detail}, status=rejected.status_code)
    return JsonResponse({"run_id": accepted.run_id, "event_key": accepted.event_key})
