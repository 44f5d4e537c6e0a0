"""Periodic jobs, run by RQ's cron scheduler: `python manage.py cron config/cron.py` (django-rq's `rqcron` plus a heartbeat).

RQ's cron evaluates expressions in UTC, so jobs here run on plain intervals; anything that must happen
at a local time (schedule triggers) keeps its next instant in PostgreSQL and is only *checked* here.
Add one `cron.register(...)` line per periodic job.
"""

from rq import cron

from runs.events.delivery import requeue_due
from runs.jobs import prune, sweep
from runs.schedules import fire_due_schedules

# Schedule triggers: start the runs whose firing time has passed (at most this many seconds late).
cron.register(fire_due_schedules, queue_name="default", interval=10)
# The engine's recovery sweeper: re-queue due or orphaned executions, reclaim those of dead workers.
cron.register(sweep, queue_name="default", interval=5)
# Event webhooks: re-queue deliveries whose job was lost (Redis) or whose worker died mid-POST.
cron.register(requeue_due, queue_name="default", interval=10)
# Retention: delete runs and event deliveries older than ACTIVITY_RETENTION_DAYS (off by default).
cron.register(prune, queue_name="low", interval=3600)
