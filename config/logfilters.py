"""Log filters. `QuietHousekeeping` drops the INFO lines of the periodic jobs in config/cron.py (the sweeper
every 5 s and the others every 10 s write some 85 lines a minute between them), so that what matters in a
development terminal, such as the mail sink's messages, is easy to find. LOG_HOUSEKEEPING=true keeps them.
Warnings and errors of those jobs always pass."""

from __future__ import annotations

import logging
import re
from collections import deque

HOUSEKEEPING_JOBS = (
    "runs.schedules.fire_due_schedules",
    "runs.jobs.sweep",
    "runs.events.delivery.requeue_due",
    "runs.jobs.prune",
)
JOB_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class QuietHousekeeping(logging.Filter):
    def __init__(self, name: str = ""):
        super().__init__(name)
        # The worker names the function once, then the job by its id ("Job OK (id)", "job id result is kept").
        self.job_ids: deque[str] = deque(maxlen=100)
        self.markers = [*HOUSEKEEPING_JOBS]
        # RQ's cron names the function by its short name: "Enqueued job sweep to queue default".
        self.markers += [f"Enqueued job {path.rsplit('.', 1)[1]} to queue" for path in HOUSEKEEPING_JOBS]

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.INFO:
            return True
        message = record.getMessage()
        if any(marker in message for marker in self.markers):
            self.job_ids.extend(JOB_ID.findall(message))
            return False
        return not any(job_id in message for job_id in self.job_ids)
