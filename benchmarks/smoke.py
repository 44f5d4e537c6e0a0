"""`--smoke`, shared by every benchmark script: a tiny size that only checks the script still runs and
prints its figures. tests/test_benchmarks_smoke.py runs each script so, so that none rots unnoticed; the
figures of a smoke run mean nothing."""

from __future__ import annotations

import argparse
import os
from typing import Any

HELP = "a tiny run that only checks the script still works (the test suite runs it; its figures mean nothing)"


def parse_with_smoke(parser: argparse.ArgumentParser, **tiny: Any) -> argparse.Namespace:
    """Parse the command line; with --smoke, the options named in `tiny` take those values."""
    parser.add_argument("--smoke", action="store_true", help=HELP)
    args = parser.parse_args()
    if args.smoke:
        for name, value in tiny.items():
            setattr(args, name, value)
    return args


def create_app_database(name: str) -> str:
    """The CREATE DATABASE of a benchmark's Rowbell database: a copy of $BENCH_TEMPLATE_DB when the smoke
    test made one (already migrated, so the script's migrate has nothing left to do), else an empty one."""
    template = os.environ.get("BENCH_TEMPLATE_DB")
    return f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")
