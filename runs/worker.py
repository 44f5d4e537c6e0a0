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

Outages (runs/engine/outages.py): RQ's own Redis clients in this worker retry forever, so its work loop,
its bookkeeping around a job and its failure handling wait for Redis instead of quitting; a worker
started while PostgreSQL or Redis is away waits for it. A job that failed because PostgreSQL went
away is put back in the queue once the database answers, instead of the worker failing every job
behind it meanwhile.
"""

from __future__ import annotations

import logging

from django.db import close_old_connections
from rq.exceptions import InvalidJobOperation
from rq.worker import SimpleWorker

from runs.engine import connections, outages
from runs.engine.liveness import Heartbeat

logger = logging.getLogger(__name__)


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
    def __init__(self, queues, *args, **kwargs):
        preload()
        # Before RQ's __init__, which already talks to Redis (CLIENT SETNAME): a worker started while
        # Redis is away waits for it there.
        queues = queues if isinstance(queues, (list, tuple)) else [queues]
        clients = [kwargs.get("connection"), *(getattr(queue, "connection", None) for queue in queues)]
        self.redis_retry = outages.ride_out_redis(*(client for client in clients if client is not None))
        super().__init__(queues, *args, **kwargs)
        for client in (self.connection, *(queue.connection for queue in self.queues)):
            client.set_retry(self.redis_retry)
        self.failed_on_database = False

    def register_birth(self):
        super().register_birth()
        self.heartbeat_thread = Heartbeat("worker", name=self.name).start(claims=True)

    def register_death(self):
        heartbeat = getattr(self, "heartbeat_thread", None)
        if heartbeat is not None:
            heartbeat.stop()
        super().register_death()

    def teardown(self):
        # Stopping (SIGTERM) during an outage: one try each, not a wait, so that the process does stop.
        self.redis_retry.stopping.set()
        try:
            super().teardown()
        except outages.REDIS_ERRORS as error:
            logger.warning("Redis unreachable while stopping (%s): RQ's record of this worker expires", error)

    def execute_job(self, job, queue):
        close_old_connections()
        self.failed_on_database = False
        try:
            return super().execute_job(job, queue)
        finally:
            connections.reset_if_busy()
            close_old_connections()
            if self.failed_on_database:
                self.requeue_after_database_outage(job, queue)

    def handle_exception(self, job, *exc_info):
        self.failed_on_database = outages.is_database_outage(exc_info[1])
        super().handle_exception(job, *exc_info)

    def requeue_after_database_outage(self, job, queue) -> None:
        """The job failed because PostgreSQL went away: wait for it, then put the job back. Waiting here,
        not in the next jobs, keeps the worker from failing every job in the queue meanwhile."""
        if not outages.wait_for_database(stop=lambda: self._stop_requested):
            return  # stopping: the sweeper queues the work again
        try:
            queue.failed_job_registry.requeue(job)
        except InvalidJobOperation:
            return  # not in the failed registry (requeued elsewhere, or Redis lost it): the sweeper's
        logger.info("Job %s failed while PostgreSQL was away; queued again", job.id)
