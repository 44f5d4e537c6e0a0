"""`manage.py add_datasource --tenant SLUG --name NAME (--url URL | --url-env VAR) [--schemas app,public]
[--notify] [--setup-sql]`: add a tenant's database, then check the connection like the web page does."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from django.core.management.base import BaseCommand, CommandError

from integrations.datasources import plan_from_url, test_connection
from integrations.models import DataSource
from workflows.management.commands._lookup import tenant_by_slug


class Command(BaseCommand):
    help = "Add a data source to a tenant and test its connection (prints each missing grant and its fix)."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", required=True, help="The tenant's slug.")
        parser.add_argument(
            "--name", required=True, help="Its name; workflow files refer to it by this name."
        )
        url = parser.add_mutually_exclusive_group(required=True)
        url.add_argument("--url", help="postgresql://role:password@host:5432/dbname")
        url.add_argument(
            "--url-env", help="Read the URL from this environment variable (keeps it out of history)."
        )
        parser.add_argument(
            "--schemas", default="public", help="Comma-separated schemas to watch (default public)."
        )
        parser.add_argument("--notify", action="store_true", help="Wake the listener with NOTIFY.")
        parser.add_argument(
            "--setup-sql",
            action="store_true",
            help="Print the setup SQL for this URL and these schemas and stop.",
        )

    def handle(self, *args, **opts):
        tenant = tenant_by_slug(opts["tenant"])
        url = _url(opts)
        schemas = [name.strip() for name in opts["schemas"].split(",") if name.strip()]
        if not schemas:
            raise CommandError("Give at least one schema with --schemas.")
        if opts["setup_sql"]:
            self.stdout.write(plan_from_url(url, schemas, tenant_slug=tenant.slug).sql(), ending="")
            return
        name = opts["name"].strip()
        if not name or len(name) > 200:
            raise CommandError("Give a name of 1 to 200 characters.")
        if DataSource.objects.for_tenant(tenant).filter(name=name).exists():
            raise CommandError(f"Tenant {tenant.slug} has a data source named “{name}” already.")
        source = DataSource.objects.create(
            tenant=tenant, name=name, connection_url=url, schemas=schemas, notify_enabled=opts["notify"]
        )
        check = test_connection(source)
        self.stdout.write(
            f"data source {source.pk} “{source.name}” added to {tenant.slug}: {source.masked_url}"
        )
        if check.ok:
            self.stdout.write(check.message)
            return
        self.stdout.write(
            f"The connection does not work yet: {check.message if not check.missing else ''}".rstrip()
        )
        for grant in check.missing:
            self.stdout.write(f"- {grant.problem}")
            if grant.fix:
                self.stdout.write("  " + grant.fix.replace("\n", "\n  "))
        self.stdout.write(
            "Run the fixes as a superuser (or --setup-sql for the whole script), then test it on its page."
        )


def _url(opts) -> str:
    url = opts["url"] if opts["url"] else os.environ.get(opts["url_env"], "")
    if not url and opts["url_env"]:
        raise CommandError(f"The environment variable {opts['url_env']} is empty or not set.")
    parts = urlsplit(url.strip())
    if parts.scheme not in ("postgres", "postgresql") or not parts.path.strip("/"):
        raise CommandError(
            "Give a PostgreSQL URL with a database name, like postgresql://user:password@host:5432/dbname."
        )
    return url.strip()
