"""``python -m bench.chaos --jobs N --json FILE [--seed S] [--database URL] [--quick]``.

Exit status 0 only when no job was lost or doubled (and no other rule of ``_check`` broke).
"""

from __future__ import annotations

import argparse
import sys

import kitcn_temporal

from ._run import Options, chaos


def parse(argv: list[str]) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__)
    parser.add_argument("--jobs", type=int, default=1000, help="jobs the producer schedules (default 1000)")
    parser.add_argument("--json", help="write the report here too")
    parser.add_argument("--seed", type=int, default=1, help="seeds the load and the faults (default 1)")
    parser.add_argument(
        "--database",
        help="the app's database: a SQLite file under the run's directory by default; a "
        "postgresql+asyncpg:// URL with the right to create roles (the run uses a role and schema of its own)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="a short run for the test suite: every fault kind at least once"
    )
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--rate", type=float, default=10.0, help="jobs scheduled per second (default 10)")
    parser.add_argument("--dir", help="where the run keeps its files (default: a new temporary directory)")
    args = parser.parse_args(argv)
    if args.jobs < 1 or args.workers < 2 or args.rate <= 0:
        parser.error("--jobs must be >= 1, --workers >= 2 and --rate > 0")
    return Options(
        jobs=args.jobs,
        json_path=args.json,
        seed=args.seed,
        database=args.database,
        quick=args.quick,
        workers=args.workers,
        rate=args.rate,
        directory=args.dir,
    )


if __name__ == "__main__":
    kitcn_temporal.run(chaos(parse(sys.argv[1:])))
