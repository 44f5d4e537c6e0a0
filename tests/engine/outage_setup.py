"""Start a fan-out run in the application database of DATABASE_URL (a PostgreSQL server a test started
and will stop): `python -m tests.engine.outage_setup <customer database URL> <recipients>` prints the
run's id. A process of its own, because the test's Django connection is bound to the test database."""

from __future__ import annotations

import os
import sys


def main(customer_url: str, n: int) -> int:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()
    from runs.engine import start_run
    from tenants.models import Tenant
    from tests.engine.test_liveness import fan_out

    tenant = Tenant.objects.create(name="Acme", slug="acme")
    return start_run(fan_out(tenant, customer_url, n), {}, "evt-outage").pk


if __name__ == "__main__":
    print(main(sys.argv[1], int(sys.argv[2])))
