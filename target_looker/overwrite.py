"""`load_method: overwrite`: a stream's table is replaced whole, atomically, once the
run has loaded the stream's records.

Users keep reading the old table, unchanged, while the run loads the new contents
beside it into a shadow table; then one transaction swaps the shadow in. A run that
fails or is killed part-way leaves the old table exactly as it was.

- The shadow (`_tl_new_<table digest>_<run digest>`, in the table's schema) is created
  empty at the stream's first batch, with the table's columns, types and primary key
  (PostgreSQL: `LIKE ... INCLUDING ALL`, so indexes a DBA added come along), then
  given the stream's new columns and wider types as the table itself would be (the
  table is not touched). Batches merge into it by key as usual (the version guard
  picks the newest of duplicates). Shadows of this table left by runs that are no
  longer `running` (killed, failed) are dropped first; another live run's shadow is
  left alone (each run has its own).
- A new SCHEMA does not swap: the shadow grows (`LookerSink.setup`), and the sync's
  records before and after it end up in the new table together.
- The swap happens at the end of the input, and when ACTIVATE_VERSION starts a new
  version of the stream (the previous version is then complete; its records are the
  new table, and the next version's records start a new shadow). Rows of older table
  versions are retired inside the shadow just before the swap, never in the table
  users read.
- The swap (`Warehouse.swap_in`): the old table is renamed `_tl_old_...`, the shadow
  takes its name, the old one is dropped, all in one transaction (PostgreSQL: after
  the old table's grants are given on the new one). An object that depends on the old
  table (a PostgreSQL view) fails the DROP: the transaction rolls back, the old table
  is intact, and the run fails with a message saying so.
- STATE: from the first record in the shadow on, STATEs are held by the `StateLedger`
  and emitted right after the swap commits: no STATE ever vouches for a record that
  is not in the table users read.
- A rejected record's key is still in the source: the old table's row with that key
  is carried into the shadow (`sinks.confirm_rejected_keys`), as ACTIVATE_VERSION
  keeps it for an upsert.
"""

from __future__ import annotations

import hashlib
import typing as t
from dataclasses import dataclass

from target_looker.warehouse.base import TableRef, WarehouseError

if t.TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from target_looker.warehouse.base import Warehouse

SHADOW_PREFIX = "_tl_new_"
RETIRED_PREFIX = "_tl_old_"
_TABLE_DIGEST, _RUN_DIGEST = 10, 8


def _digest(text: str, length: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def overwrite_table_name(prefix: str, table: TableRef, run_id: str) -> str:
    """A short name for one run's table beside `table` (short: any identifier limit)."""
    return f"{prefix}{_digest(table.name, _TABLE_DIGEST)}_{_digest(run_id, _RUN_DIGEST)}"


def stale_tables(names: Iterable[str], table: TableRef, live_runs: Iterable[str]) -> list[str]:
    """Of `names`, the shadows (and retired tables) of `table` that no live run owns."""
    owned = {_digest(run_id, _RUN_DIGEST) for run_id in live_runs}
    heads = [
        f"{prefix}{_digest(table.name, _TABLE_DIGEST)}_"
        for prefix in (SHADOW_PREFIX, RETIRED_PREFIX)
    ]
    return sorted(
        name
        for name in names
        for head in heads
        if name.startswith(head) and name[len(head) :] not in owned
    )


@dataclass
class Overwrite:
    """One overwrite of `table` in progress: this run's batches of it go into `shadow`."""

    stream: str
    table: TableRef
    run_id: str
    created: bool = False  # the shadow exists (set on the loader thread)

    @property
    def shadow(self) -> TableRef:
        return TableRef(
            self.table.schema, overwrite_table_name(SHADOW_PREFIX, self.table, self.run_id)
        )

    @property
    def retired(self) -> TableRef:
        return TableRef(
            self.table.schema, overwrite_table_name(RETIRED_PREFIX, self.table, self.run_id)
        )

    def create(
        self,
        warehouse: Warehouse,
        other_live_runs: Iterable[str],
        shape: Callable[[TableRef], t.Any],
    ) -> list[str]:
        """Drop the stale shadows of the table, then create this run's, empty: defined
        like the table (when it exists), then `shape`d (the stream's columns added, types
        widened, as the table itself would be).

        Returns the names of the stale tables dropped.
        """
        schema = self.table.schema
        stale = stale_tables(warehouse.table_names(schema), self.table, other_live_runs)
        for name in stale:
            warehouse.drop_table(TableRef(schema, name))
        if warehouse.existing_columns(self.table) is not None:
            warehouse.create_shadow(self.shadow, self.table)
        shape(self.shadow)
        warehouse.note_table_state(self.shadow)  # empty: PostgreSQL COPYs straight into it
        self.created = True
        return stale

    def swap(self, warehouse: Warehouse, also: Callable[[], t.Any]) -> None:
        """Swap the shadow in, and run `also` (audit rows), in one transaction.

        Any failure leaves the old table intact and is raised as a `WarehouseError`
        saying so.
        """

        def write() -> None:
            warehouse.swap_in(self.table, self.shadow, self.retired)
            also()

        name = warehouse.qualified(self.table)
        try:
            warehouse.run_transaction(write, what=f"replacing {name} (overwrite)")
        except Exception as exc:
            # During the swap the old table is named `retired`: the error names it so.
            cause = warehouse.error_text(exc).replace(self.retired.name, self.table.name)
            raise WarehouseError(
                f"load_method overwrite: {name} could not be replaced by the newly loaded "
                f"table ({cause}). The table is unchanged and no STATE "
                f"covering the stream's new records was emitted. Objects that depend on the "
                f"table (views, foreign keys) block the swap: if that is the cause, drop them "
                f"and recreate them after the load, or use load_method 'upsert'."
            ) from exc
        self.created = False


__all__ = ["RETIRED_PREFIX", "SHADOW_PREFIX", "Overwrite", "stale_tables"]
