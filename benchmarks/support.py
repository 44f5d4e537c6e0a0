"""Pieces the fan-out benchmark runs inside RQ workers (importable by `manage.py rqworker`)."""

from __future__ import annotations

from django.core.mail import send_mail
from django.db import connection
from jinja2 import Environment

from runs.worker import EngineWorker

STATEMENTS_KEY = "bench:statements"
_env = Environment(autoescape=False)
_subject = _env.from_string("Hello {{ item.name }}")
_text = _env.from_string("Hi {{ item.name }}, there is a new comment on post {{ item.post_id }}.")


class CountingWorker(EngineWorker):
    """A forking RQ worker that counts the SQL statements its jobs send (in the work horse)."""

    def perform_job(self, job, queue):
        count = 0

        def counter(execute, sql, params, many, context):
            nonlocal count
            count += 1
            return execute(sql, params, many, context)

        with connection.execute_wrapper(counter):
            result = super().perform_job(job, queue)
        self.connection.incrby(STATEMENTS_KEY, count)
        return result


def naive_send(item: dict) -> None:
    """The baseline: one plain job per recipient that renders and sends with send_mail."""
    send_mail(_subject.render(item=item), _text.render(item=item), None, [item["email"]])
