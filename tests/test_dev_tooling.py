"""Development conveniences: scripts/manage follows scripts/dev's choice of servers, and the periodic jobs'
routine log lines are filtered out while everything else passes."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from config import services
from config.logfilters import QuietHousekeeping

ROOT = Path(__file__).resolve().parents[1]


def record(message: str, level: int = logging.INFO) -> logging.LogRecord:
    return logging.LogRecord("rq.worker", level, __file__, 1, message, None, None)


def test_housekeeping_lines_and_their_follow_ups_are_dropped_the_rest_passes():
    quiet = QuietHousekeeping()
    sweep_id, batch_id = "9a17ba7c-1978-4a1e-a495-75182adc1b00", "4b8c933d-d024-4b93-b9ab-293616e1fb09"
    dropped = [
        f"Worker w1: default: runs.jobs.sweep() ({sweep_id})",
        "Successfully completed runs.jobs.sweep() job in 0:00:00.017140s on worker w1",
        f"Worker w1: default: Job OK ({sweep_id})",
        f"Worker w1: job {sweep_id} result is kept for 500 seconds",
        "Enqueued job fire_due_schedules to queue default",
        "Enqueued job requeue_due to queue default",
    ]
    kept = [
        f"Worker w1: default: runs.jobs.run_batch(12, 34, 0) ({batch_id})",
        f"Worker w1: default: Job OK ({batch_id})",
        "---------- MESSAGE FOLLOWS ----------",
        "Enqueued job sweeper_of_my_own to queue default",
    ]
    assert [m for m in dropped if quiet.filter(record(m))] == []
    assert [m for m in kept if not quiet.filter(record(m))] == []
    assert quiet.filter(record(f"job {sweep_id} failed", logging.ERROR))  # problems always pass


def test_manage_uses_embedded_servers_when_dev_last_did(tmp_path, monkeypatch):
    monkeypatch.setattr(services, "DEV_CHOICE", tmp_path / "dev-services")
    assert not services.dev_used_embedded()  # nothing recorded: the usual detection
    services.record_choice(embedded=True)
    assert services.dev_used_embedded()
    monkeypatch.setenv("ROWBELL_EMBEDDED", "1")
    assert not services.listening("127.0.0.1", 5432)  # embedded: a local server is not used
    services.record_choice(embedded=False)
    assert not services.dev_used_embedded()


@pytest.mark.slow
def test_the_scripts_pass_the_flags():
    assert "config.services --record" in (ROOT / "scripts/dev").read_text()
    assert "config.services --like-dev" in (ROOT / "scripts/manage").read_text()
    result = subprocess.run(
        [sys.executable, "-m", "config.services", "--help"], capture_output=True, text=True, cwd=ROOT
    )
    assert "--like-dev" in result.stdout and "--record" in result.stdout


@pytest.mark.slow  # honcho and the processes it supervises
def test_under_scripts_dev_a_process_that_exits_is_restarted_and_the_others_keep_running(tmp_path):
    import os
    import signal
    import time

    procfile = tmp_path / "Procfile"
    starts = tmp_path / "starts"
    procfile.write_text(f"steady: sleep 60\ncrash: sh -c 'echo started >> {starts}; exit 3'\n")
    supervised = tmp_path / "Procfile.supervised"
    supervised.write_text(
        subprocess.run(
            [sys.executable, "-m", "config.supervise", "--print-procfile", "--procfile", str(procfile)],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    honcho = subprocess.Popen(
        [str(ROOT / ".venv/bin/honcho"), "start", "-f", str(supervised), "-d", str(ROOT)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not (starts.exists() and len(starts.read_text().split()) >= 3):
            assert honcho.poll() is None, "honcho stopped everything when one process exited"
            assert time.monotonic() < deadline, "the exiting process was not started again"
            time.sleep(0.2)
        assert honcho.poll() is None
    finally:
        honcho.send_signal(signal.SIGINT)
        output = honcho.communicate(timeout=30)[0]
    assert "crash exited with 3; starting it again" in output
    assert "steady" in output
