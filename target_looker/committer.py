"""A single background thread that owns the warehouse connection while batches load.

Decoding the next batch (Python, one core) overlaps with the database loading the
previous one (PostgreSQL, the other core). Jobs run strictly in submission order, and
a job's STATE is emitted (by `on_committed`, on this thread) only after the job has
committed, so STATE never runs ahead of the data, and is not held back until the next
input line arrives. A job is handed over only once the previous one has finished, so
at most two batches are in memory: the one loading and the one being read.
"""

from __future__ import annotations

import collections
import queue
import threading
import typing as t
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Job:
    """Work for the warehouse thread; `state` is safe to emit once it has committed."""

    run: Callable[[], t.Any]
    state: dict | None = None
    result: t.Any = None
    error: BaseException | None = None
    skipped: bool = False
    closed: bool = False  # its STATE can no longer change
    done: threading.Event = field(default_factory=threading.Event)


class Committer:
    """Runs jobs in order on one thread; failures surface in the main thread."""

    def __init__(self, on_committed: Callable[[Job], None]) -> None:
        self._on_committed = on_committed
        self._queue: queue.Queue[Job | None] = queue.Queue(maxsize=1)
        self._finished: collections.deque[Job] = collections.deque()
        self._failed: BaseException | None = None
        self._stopping = False
        self._idle = threading.Event()
        self._lock = threading.Lock()
        self._last: Job | None = None
        self._thread: threading.Thread | None = None

    def _worker(self) -> None:
        while True:
            job = self._queue.get()
            try:
                if job is None:
                    return
                if self._failed is not None or self._stopping:
                    job.skipped = True
                else:
                    try:
                        job.result = job.run()
                        with self._lock:
                            job.closed = True
                        self._on_committed(job)
                    except BaseException as exc:  # re-raised in the main thread
                        job.error = exc
                        self._failed = exc
                self._finished.append(job)
                job.done.set()
            finally:
                self._queue.task_done()
                self._idle.set()

    def submit(self, job: Job) -> None:
        self.raise_if_failed()
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._worker, name="target-looker-warehouse", daemon=True
            )
            self._thread.start()
        while self._queue.unfinished_tasks:
            self._idle.wait(timeout=0.5)
            self.raise_if_failed()
        self._idle.clear()
        self._last = job
        self._queue.put(job)

    def attach_state(self, state: dict) -> bool:
        """Let the last submitted job, if not yet done, carry a newer STATE.

        For a STATE that became safe with nothing buffered: it is safe as soon as the
        jobs already submitted have committed, so it rides on the last of them instead
        of making the reader wait for it.
        """
        with self._lock:
            job = self._last
            if job is None or job.closed or self._failed is not None:
                return False
            job.state = state
            return True

    def finished(self) -> list[Job]:
        """Jobs completed since the last call, in order (main thread)."""
        jobs = []
        while self._finished:
            jobs.append(self._finished.popleft())
        return jobs

    @property
    def has_finished(self) -> bool:
        return bool(self._finished)

    def wait_idle(self) -> None:
        """Block until every submitted job has run (the connection is then free)."""
        if self._thread is not None:
            self._queue.join()

    def raise_if_failed(self) -> None:
        if self._failed is not None:
            raise self._failed

    def stop(self) -> None:
        """Let the running job finish, drop queued ones, end the thread."""
        if self._thread is None:
            return
        self._stopping = True
        self._queue.put(None)
        self._thread.join()
        self._thread = None
