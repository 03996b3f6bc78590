"""Retry the records in `_load_rejects` with the target's config (`ifs-looker replay-rejects`).

Fix the cause first (schema, column type, data in IFS), then replay. Each reject is
sent through a normal target run: merged with the version guard, audited in
`_load_runs`/`_load_batches`, and stamped `replayed_at`. A reject whose row was loaded
again after it was recorded is not sent (it would overwrite newer data) and counts as
skipped, like one the version guard refuses. Records that fail again become new
rejects of the replay run; the command then exits 1.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from target_looker.rejects import replay


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        required=True,
        type=Path,
        help="target-looker config JSON (the same settings the target runs with)",
    )
    parser.add_argument("--stream", help="replay only this stream's rejects")
    parser.add_argument("--run-id", help="replay only the rejects of this run")
    parser.add_argument(
        "--dry-run", action="store_true", help="count pending rejects, change nothing"
    )


def run(args: argparse.Namespace) -> int:
    config = json.loads(args.config.read_text(encoding="utf-8"))
    result = replay(config, stream=args.stream, run_id=args.run_id, dry_run=args.dry_run)
    if args.dry_run:
        print(f"{result.replayed} reject(s) pending replay")
        return 0
    if not result.replayed:
        print("no rejects pending replay")
        return 0
    print(
        f"replayed {result.replayed} reject(s) in run {result.run_id}: "
        f"{result.loaded} loaded, {result.skipped} skipped as older (a newer row is stored), "
        f"{result.rejected_again} rejected again"
    )
    return 1 if result.rejected_again else 0
