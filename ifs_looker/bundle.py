"""Regenerate the bundled `$metadata` (tap_ifscloud/schemas/*.json) used for offline discovery.

    python -m ifs_looker.bundle                 # from an in-process IFS Cloud sandbox
    python -m ifs_looker.bundle --config c.json # from a real system (same settings as the tap)

Only the projections of the built-in streams are bundled; custom streams and
overridden projections are always read from the live system.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import tap_ifscloud.schemas
from tap_ifscloud.api import Connection, IFSApi, retry_policy
from tap_ifscloud.streams import BUILTIN_STREAMS

SCHEMA_DIR = Path(tap_ifscloud.schemas.__file__).parent


def write_bundle(config: dict, out_dir: Path = SCHEMA_DIR) -> list[Path]:
    """Fetch and write one JSON file per built-in projection; returns the paths."""
    api = IFSApi(Connection.from_config(config), retry_policy(config))
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for projection in sorted({d.projection for d in BUILTIN_STREAMS}):
        path = out_dir / f"{projection}.json"
        path.write_text(api.metadata(projection).dumps(), encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, help="tap config JSON (default: a sandbox)")
    parser.add_argument("--out", type=Path, default=SCHEMA_DIR)
    args = parser.parse_args(argv)
    if args.config:
        paths = write_bundle(json.loads(args.config.read_text()), args.out)
    else:
        from ifs_looker_sandboxes.ifs_cloud import IfsCloudSandbox, SandboxConfig

        sandbox_config = SandboxConfig(voucher_rows_per_company=10)
        with IfsCloudSandbox(sandbox_config) as sandbox:
            paths = write_bundle(
                {
                    "base_url": sandbox.base_url,
                    "token_url": sandbox.token_url,
                    "client_id": sandbox_config.client_id,
                    "client_secret": sandbox_config.client_secret,
                },
                args.out,
            )
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
