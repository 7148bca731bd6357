"""Survivors of cosmic-ray sessions: the rate per session, then each survivor's diff.

python scripts/mutation/report.py /tmp/mut-sessions/*.sqlite [--diffs]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cosmic_ray.work_db import WorkDB, use_db  # type: ignore[import-untyped]
from cosmic_ray.work_item import TestOutcome, WorkerOutcome  # type: ignore[import-untyped]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("sessions", type=Path, nargs="+")
    parser.add_argument("--diffs", action="store_true", help="print every survivor's diff")
    args = parser.parse_args()
    for session in args.sessions:
        with use_db(str(session), WorkDB.Mode.open) as db:
            run = [
                (item, result)
                for item, result in db.completed_work_items
                if result.worker_outcome is not WorkerOutcome.SKIPPED
            ]
            survived = [(i, r) for i, r in run if r.test_outcome is TestOutcome.SURVIVED]
            incompetent = sum(r.test_outcome is TestOutcome.INCOMPETENT for _, r in run)
            pending = db.num_work_items - db.num_results
            rate = f"{100 * len(survived) / len(run):.0f}%" if run else "-"
            print(
                f"{session.stem}: {len(survived)}/{len(run)} survived ({rate}), "
                f"{incompetent} incompetent, {pending} pending"
            )
            for item, result in survived if args.diffs else []:
                mutation = item.mutations[0]
                print(f"--- {item.job_id} {mutation.operator_name} line {mutation.start_pos[0]}")
                print(result.diff)


if __name__ == "__main__":
    main()
