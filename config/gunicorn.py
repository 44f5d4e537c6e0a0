"""Gunicorn settings for the web process (`gunicorn -c config/gunicorn.py config.wsgi`).

A master that is SIGKILLed cannot stop its workers, and gunicorn's workers only notice a new parent
between requests (up to half the timeout later). On Linux the kernel is asked to stop each worker the
moment its master dies, so no Procfile process leaves a child behind.
"""

from __future__ import annotations

import ctypes
import os
import signal

PR_SET_PDEATHSIG = 1
# Above Django's MAX_HEADER_BYTES (8190): a long header reaches Rowbell, which refuses it with 431 in the
# answer's own format (JSON under /api/ and /hooks/), instead of gunicorn's HTML page.
limit_request_field_size = 32768


def post_fork(server, worker) -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: gunicorn's own parent check remains
        return
    if os.getppid() != worker.ppid:  # the master died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)
