"""Create (or refresh) the demo tenant, its owner and its example workflow, and print how to sign in.

It lives with workflows because it imports one (tenants sits below workflows)."""

import json

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from tenants.models import Membership, Role, Tenant
from workflows.files import import_workflow
from workflows.models import Workflow

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "rowbell-demo"
DEMO_WORKFLOW = settings.BASE_DIR / "docs" / "examples" / "welcome-webhook.json"


class Command(BaseCommand):
    help = "Create the demo tenant with a demo owner who can also use the Django admin."

    def add_arguments(self, parser):
        parser.add_argument("--password", default=DEMO_PASSWORD)

    def handle(self, *args, password: str, **options):
        tenant, _ = Tenant.objects.get_or_create(slug="demo", defaults={"name": "Demo"})
        user, created = get_user_model().objects.get_or_create(
            username=DEMO_USERNAME, defaults={"email": "demo@example.com"}
        )
        if created:
            user.set_password(password)
        user.is_staff = True
        user.is_superuser = True
        user.save()
        Membership.objects.get_or_create(user=user, tenant=tenant, defaults={"role": Role.OWNER})
        if not Workflow.objects.for_tenant(tenant).exists():
            data = json.loads(DEMO_WORKFLOW.read_text())
            workflow = import_workflow(data, tenant, publish_it=True, user=user)
            self.stdout.write(
                f"Demo workflow “{workflow.name}” published. Run it: scripts/manage trigger_workflow "
                f'{workflow.pk} --payload \'{{"email": "ada@example.com", "name": "Ada"}}\''
            )
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo tenant ready. Sign in at http://127.0.0.1:8000/ (admin: /admin/) "
                f"as “{DEMO_USERNAME}” with password “{password if created else '(unchanged)'}”."
            )
        )
