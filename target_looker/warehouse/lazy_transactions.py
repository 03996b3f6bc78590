"""Transactions that begin with their first statement, with DDL kept outside them.

BigQuery runs no DDL inside a transaction and Snowflake commits an open one at any DDL;
so both load a batch's staging table (DDL, a load) before the transaction's first
statement, run schema changes on their own, and drop staging tables once the transaction
has ended. What that takes is the same for both and lives here; each warehouse brings
its own BEGIN/COMMIT/ROLLBACK and its way of dropping a staging table.
"""

from __future__ import annotations

import abc
import contextlib
import time
import typing as t
from collections.abc import Callable, Iterator

from target_looker.columns import Column
from target_looker.warehouse.base import TableRef, Warehouse, WarehouseError

T = t.TypeVar("T")


class LazyTransactionWarehouse(Warehouse):
    """A warehouse whose `transaction()` begins lazily and whose DDL runs outside it.

    Subclasses call `_init_transaction_state()` in `__init__`, set `_began` when they
    send the transaction's first statement, and implement `_commit`, `_rollback` and
    `_drop_stage`.
    """

    retryable_words: t.ClassVar[tuple[str, ...]] = ()  # error texts worth another attempt

    def _init_transaction_state(self) -> None:
        self._in_transaction = False
        self._began = False  # the transaction's first statement has run
        self._stages: list[t.Any] = []  # staging tables to drop once the transaction ends
        self._in_ddl = False

    @abc.abstractmethod
    def _commit(self) -> None: ...

    @abc.abstractmethod
    def _rollback(self) -> None: ...

    @abc.abstractmethod
    def _drop_stage(self, stage: t.Any) -> None:
        """Drop a staging table if it exists (never raising: it is only clean-up)."""

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """A transaction begun by the first statement inside it (DDL or a load before that,
        such as the staging table's, stays out of it), committed at the end, rolled back
        on an error. Nested, it is part of the outer one."""
        if self._in_transaction:
            yield
            return
        self._in_transaction, self._began = True, False
        try:
            yield
            if self._began:
                self._commit()
        except BaseException:
            if self._began:
                self._rollback()
            raise
        finally:
            self._in_transaction, self._began = False, False
            stages, self._stages = self._stages, []
            for stage in stages:
                self._drop_stage(stage)

    def in_transaction(self) -> bool:
        return self._in_transaction

    def is_retryable(self, exc: BaseException) -> bool:
        text = str(exc).lower()
        return any(word in text for word in self.retryable_words)

    def drop_after_transaction(self, stage: t.Any) -> None:
        """Drop `stage` once the transaction that reads it has ended (now, outside one)."""
        if self._in_transaction:
            self._stages.append(stage)
        else:
            self._drop_stage(stage)

    def retried_ddl(self, fn: Callable[[], T]) -> T:
        """`fn` as DDL on its own, run again when a concurrent loader got there first or
        the warehouse asks for a retry; `fn` re-reads what exists (no locks to take)."""
        attempt = 1
        while True:
            try:
                self._in_ddl = True
                try:
                    return fn()
                finally:
                    self._in_ddl = False
            except Exception as exc:
                retry = self.is_already_exists(exc) or self.is_retryable(exc)
                if attempt >= self.transaction_attempts or not retry:
                    raise
                time.sleep(self.retry_delay(attempt))
                attempt += 1

    def refill_from_shadow(self, table: TableRef, shadow: TableRef, delete_all: str) -> None:
        """`table` emptied (`delete_all`) and filled from `shadow`, in the caller's
        transaction: the swap of an overwrite without a rename (a rename is DDL).

        The table is given the shadow's columns first, by DDL on its own, before the
        transaction's first statement.
        """
        columns = self.existing_columns(shadow)
        if columns is None:
            raise WarehouseError(f"the new contents {self.qualified(shadow)} are missing")
        if self.existing_columns(table) is None:
            self.create_table(
                table, [Column(n, ty) for n, ty in columns.items()], self.primary_key(shadow)
            )
        else:
            for name, sql_type in columns.items():
                self.add_column(table, Column(name, sql_type))
        names = ", ".join(self.quote(name) for name in columns)
        target = self.qualified(table)
        self.execute(delete_all)
        self.execute(f"INSERT INTO {target} ({names}) SELECT {names} FROM {self.qualified(shadow)}")  # noqa: S608

    def retire_old_versions(
        self, table: TableRef, version: int, *, hard_delete: bool, deleted_at: t.Any
    ) -> int:
        """As the base class's, with a count the warehouse does not report (-1) as 0."""
        return max(
            0,
            super().retire_old_versions(
                table, version, hard_delete=hard_delete, deleted_at=deleted_at
            ),
        )
