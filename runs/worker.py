"""The RQ worker class for Rowbell: `manage.py rqworker default low --worker-class runs.worker.EngineWorker`.

RQ's scheduler runs as its own Procfile process (`manage.py scheduler`), not with `--with-scheduler`:
that option forks a scheduler child from the worker, and a SIGKILLed worker left it running as an orphan.

It runs jobs in the worker process itself (RQ's `SimpleWorker`), not in a work horse forked per job:
a fork per job plus a fresh PostgreSQL and Redis connection in every horse cost more than a small
batch itself (a run's trigger or condition step). Here Django's database connection and the Redis
connection stay open across jobs; `close_old_connections()` runs around every job, as Django does
around every request, so a connection that broke or passed CONN_MAX_AGE is replaced before the next
job uses it.

What the fork used to give, and where it is now:
- job timeouts: SimpleWorker applies RQ's death penalty (SIGALRM) in the main thread, where jobs run;
- a killed worker (SIGKILL, OOM) loses nothing: PostgreSQL holds the claimed executions, marked with
  this worker's name, and the sweeper reclaims them once its heartbeat is older than
  WORKER_LEASE_SECONDS (runs/engine/liveness.py; tests/engine/test_liveness.py);
- a job interrupted mid-statement (its timeout) leaves no busy connection: it is reset after the job;
- imports: the engine, every step kind, Jinja2's sandbox and the mail backend are imported once,
  before the first job (`preload`).
"""

from __future__ import annotations

from django.db import close_old_connections
from rq.worker import SimpleWorker

from runs.engine import connections
from runs.engine.liveness import Heartbeat


def preload() -> None:
    """Import and warm what jobs use before the first job, so that it does not pay for them (the imports
    are the point of this function, hence inside it)."""
    import email.mime.multipart
    import email.mime.text  # noqa: F401

    import django.core.mail.backends.smtp  # noqa: F401

    import integrations.channels.email
    import integrations.channels.http
    import integrations.query  # noqa: F401
    import runs.engine.delivery_protocol
    import runs.engine.executor
    import runs.jobs  # noqa: F401
    import workflows.steps  # noqa: F401  (every step kind)
    from integrations.templating import render

    render("{{ warm }}", {"warm": "up"}, html=True)


class EngineWorker(SimpleWorker):
    def __init__(self, *args, **kwargs):
        preload()
        super().__init__(*args, **kwargs)

    def register_birth(self):
        super().register_birth()
        self.heartbeat_thread = Heartbeat("worker", name=self.name).start(claims=True)

    def register_death(self):
        heartbeat = getattr(self, "heartbeat_thread", None)
        if heartbeat is not None:
            heartbeat.stop()
        super().register_death()

    def execute_job(self, job, queue):
        close_old_connections()
        try:
            return super().execute_job(job, queue)
        finally:
            connections.reset_if_busy()
            close_old_connections()
