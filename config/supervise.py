"""Keep one Procfile process running: `python -m config.supervise NAME [--procfile Procfile]`
(`--print-procfile` prints a Procfile for honcho whose every line does so).

`scripts/dev` runs every Procfile line under this (through honcho), because honcho stops all the
processes when one exits: with it, one process that exits (a crash, a kill) is started again after a
short pause, and the others go on. Production uses the process manager instead (systemd
`Restart=always`, docs/operations.md).

The command runs in its own session (honcho's Ctrl-C reaches it once, through here), and the kernel
stops it if this supervisor is SIGKILLed (no process left behind).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import signal
import subprocess
import sys
import time
from pathlib import Path

PR_SET_PDEATHSIG = 1
RESTART_PAUSE = (1.0, 10.0)  # first pause, longest pause (it doubles while the command keeps exiting early)
STEADY_AFTER = 30.0  # seconds of running after which an exit counts as a first one again


def procfile_entries(procfile: Path) -> dict[str, str]:
    entries = {}
    for line in procfile.read_text().splitlines():
        name, sep, command = line.partition(":")
        if sep and name.strip() and not line.lstrip().startswith("#"):
            entries[name.strip()] = command.strip()
    return entries


def supervised_procfile(procfile: Path) -> str:
    """The Procfile for honcho: every line runs its process under this supervisor."""
    python = Path(sys.executable)
    return "".join(
        f"{name}: exec {python} -m config.supervise {name} --procfile {procfile}\n"
        for name in procfile_entries(procfile)
    )


def _die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):  # not Linux: nothing to ask the kernel
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class Supervisor:
    def __init__(self, name: str, command: str):
        self.name = name
        self.command = command
        self.child: subprocess.Popen | None = None
        self.stopping = False

    def stop(self, signum: int, frame) -> None:
        self.stopping = True
        if self.child is not None and self.child.poll() is None:
            self.child.send_signal(signum)

    def run(self) -> int:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self.stop)
        pause = RESTART_PAUSE[0]
        while True:
            started = time.monotonic()
            self.child = subprocess.Popen(
                ["/bin/sh", "-c", f"exec {self.command}"], start_new_session=True, preexec_fn=_die_with_parent
            )
            code = self.child.wait()
            if self.stopping:
                return code
            if time.monotonic() - started > STEADY_AFTER:
                pause = RESTART_PAUSE[0]
            print(
                f"[supervise] {self.name} exited with {code}; starting it again in {pause:.0f} s", flush=True
            )
            deadline = time.monotonic() + pause
            while not self.stopping and time.monotonic() < deadline:
                time.sleep(0.1)
            if self.stopping:
                return code
            pause = min(pause * 2, RESTART_PAUSE[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", nargs="?", help="the Procfile process to keep running")
    parser.add_argument("--procfile", type=Path, default=Path("Procfile"))
    parser.add_argument(
        "--print-procfile", action="store_true", help="print a Procfile that supervises each line"
    )
    args = parser.parse_args(argv)
    if args.print_procfile:
        sys.stdout.write(supervised_procfile(args.procfile))
        return 0
    entries = procfile_entries(args.procfile)
    if args.name not in entries:
        parser.error(f"{args.procfile} has no process named {args.name!r}")
    return Supervisor(args.name, entries[args.name]).run()


if __name__ == "__main__":
    sys.exit(main())
