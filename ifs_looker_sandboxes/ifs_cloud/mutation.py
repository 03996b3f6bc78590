"""The mutation clock: changes data between requests, as a busy IFS system does.

Each tick applies one change to a randomly chosen entity set, by the entity's
behaviour: `changing` entities (orders, invoices) get inserts and updates that
move `LastModified` to now; `ledger` entities (voucher rows) get new balanced
vouchers entered today (posted vouchers are immutable); `reference` entities
(accounts, code parts, hierarchy) get inserts, updates and deletes.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from ..clock import REAL_TIME, TimeSource
from .dataset import VoucherFactory, random_amount
from .store import EntityTable, Store


class MutationClock:
    """Applies `ticks` changes per call; deterministic for a seed and the time source's times.

    Changed rows are dated by `time_source` (the sandbox's time source): with a
    `ManualClock`, the same seed and ticks give the same rows, timestamps included.
    """

    def __init__(self, store: Store, seed: int, time_source: TimeSource = REAL_TIME) -> None:
        self.store = store
        self.time = time_source
        self.rng = random.Random(f"{seed}:mutations")
        self.serial = 0
        self.log: list[tuple[str, str, tuple]] = []  # (action, entity set, key)

    def tick(self, ticks: int) -> None:
        with self.store.lock:
            tables = sorted(self.store.tables.values(), key=lambda t: t.entity_set.name)
            for _ in range(ticks):
                table = tables[self.rng.randrange(len(tables))]
                if table.rows:
                    getattr(self, f"_{table.entity.behaviour}")(table)

    def _now(self) -> datetime:
        return self.time.now().replace(microsecond=0)

    def _pick(self, table: EntityTable) -> tuple:
        """A random key of the table: `list(table.rows)[randrange(len(table.rows))]`, without
        listing millions of generated keys."""
        return table.key_at(self.rng.randrange(len(table.rows)))

    def _changing(self, table: EntityTable) -> None:
        now = self._now()
        template = table.as_dict(table.rows[self._pick(table)])
        if self.rng.random() < 0.4:
            self.serial += 1
            values = dict(template)
            for name, value in self._fresh_key(table, template).items():
                values[name] = value
            values["LastModified"] = now
            table.put(values, now)
            self.log.append(("insert", table.entity_set.name, table.key_of(values)))
            return
        values = dict(template)
        values["Objstate"] = self._next_state(table, values.get("Objstate"))
        for name in ("TotalAmount", "NetAmount", "BuyUnitPrice"):
            if name in values:
                values[name] = random_amount(self.rng)
        values["LastModified"] = now
        table.put(values, now)
        self.log.append(("update", table.entity_set.name, table.key_of(values)))

    @staticmethod
    def _next_state(table: EntityTable, state: object) -> object:
        """The next member of the entity's own state enum; the last state stays (never invalid)."""
        prop = table.entity.prop("Objstate")
        members = table.projection_enums[prop.type].members if prop is not None else ()
        if state not in members or members.index(state) + 1 >= len(members):
            return state
        following = members[members.index(state) + 1]
        return state if following == "Cancelled" else following

    def _fresh_key(self, table: EntityTable, template: dict[str, object]) -> dict[str, object]:
        key: dict[str, object] = {}
        for name in table.entity.keys:
            value = template[name]
            if name == "Company":
                key[name] = value
            elif isinstance(value, int):
                key[name] = 9_000_000 + self.serial
            elif name in ("LineNo", "ReleaseNo"):
                key[name] = value
            else:
                key[name] = f"M{self.serial:07d}"
        return key

    def _ledger(self, table: EntityTable) -> None:
        company = table.rows[self._pick(table)].Company  # type: ignore[attr-defined]
        factory = VoucherFactory(company, self.rng)
        today = self._now().date()
        factory.next_no = {
            (t, today.year): 800_000_000 + self.serial * 10 for t in ("GL", "AP", "AR", "MPL")
        }
        self.serial += 1
        changed = self._now()
        for row in factory.voucher(today):
            table.put(row, changed)
            self.log.append(("insert", table.entity_set.name, table.key_of(row)))

    def _reference(self, table: EntityTable) -> None:
        now = self._now()
        roll = self.rng.random()
        key = self._pick(table)
        if roll < 0.3 and len(table.rows) > 3:
            table.delete(key)
            self.log.append(("delete", table.entity_set.name, key))
            return
        values = table.as_dict(table.rows[key])
        if roll < 0.6:
            self.serial += 1
            last_key = table.entity.keys[-1]
            values[last_key] = f"M{self.serial:05d}"
            action = "insert"
        else:
            action = "update"
        base = str(values.get("Description") or "").split(" (rev ")[0]
        values["Description"] = f"{base} (rev {self.serial})".strip()
        if "ValidUntil" in values:
            values["ValidUntil"] = now.date() + timedelta(days=365)
        table.put(values, now)
        self.log.append((action, table.entity_set.name, table.key_of(values)))
