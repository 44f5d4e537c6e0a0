"""The RQ worker class for Rowbell: `manage.py rqworker default low --with-scheduler
--worker-class runs.worker.EngineWorker`.

RQ's default worker forks a work horse per job. Whatever the job imports on first use (the engine,
every step kind, Jinja2's sandbox, psycopg, the mail backend) would be imported again in every horse,
which cost more than the batch itself in the fan-out benchmark. This class imports it all once in the
parent, before any fork, so horses start warm.
"""

from __future__ import annotations

from rq.worker import Worker


def preload() -> None:
    import email.mime.multipart
    import email.mime.text  # noqa: F401

    import django.core.mail.backends.smtp  # noqa: F401

    import integrations.channels.email
    import integrations.channels.http
    import integrations.query  # noqa: F401
    import runs.engine.executor
    import runs.engine.sending
    import runs.jobs  # noqa: F401
    from workflows.steps import load_kinds
    from workflows.templating import render

    load_kinds()
    render("{{ warm }}", {"warm": "up"}, html=True)


class EngineWorker(Worker):
    def __init__(self, *args, **kwargs):
        preload()
        super().__init__(*args, **kwargs)
