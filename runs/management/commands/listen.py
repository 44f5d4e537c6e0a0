"""`manage.py listen`: the long-running process that turns database trigger events into runs."""

from __future__ import annotations

import signal
import threading

from django.core.management.base import BaseCommand

from runs.engine.liveness import Heartbeat
from runs.listener import Listener


class Command(BaseCommand):
    help = "Listen to every data source with a published database trigger and start runs for its events."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--once", action="store_true", help="One pass over the data sources, then exit.")
        parser.add_argument("--until-idle", action="store_true", help="Exit when a pass finds no events.")
        parser.add_argument("--max-seconds", type=float, default=None, help="Exit after this long.")

    def handle(
        self, *args, once: bool = False, until_idle: bool = False, max_seconds=None, **options
    ) -> None:
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        heartbeat = Heartbeat("listener")
        listener = Listener(stop=stop, identity=heartbeat.name)  # others count it while it holds nothing
        if once:
            handled = listener.run_once()
            listener.close()
        else:
            self.stdout.write("Listening for database events (Ctrl-C to stop)")
            heartbeat.start()
            try:
                handled = listener.run(until_idle=until_idle, max_seconds=max_seconds)
            finally:
                heartbeat.stop()
        self.stdout.write(f"Handled {handled} event(s)")
