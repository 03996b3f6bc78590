"""The README's first command (`make demo`): sandboxes + pipeline into DuckDB + a summary.

The end-to-end Meltano run lands with the Meltano issue; until then this says so.
"""

from __future__ import annotations

import sys


def main() -> int:
    print(
        "not yet: the demo (`meltano run tap-ifscloud target-looker` against the sandboxes) lands "
        "with the Meltano issue.\nMeanwhile: `ifs-looker sandbox` starts the IFS Cloud sandbox "
        "(see README)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
