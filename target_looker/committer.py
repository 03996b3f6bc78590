"""A single background thread that owns the warehouse connection while batches load.

Decoding the next batch (Python, one core) overlaps with the database loading the
previous one (PostgreSQL, the other core). Jobs run strictly in submission order, and
a job's STATE is emitted (by `on_committed`, on this thread) only after the job has
committed, so STATE never runs ahead of the data, and is not held back until the next
input line arrives. A job is handed over only once the previous one has finished, so
at most two batches are in memory: the one loading and the one being read.

After a job fails, no later job runs and no STATE is emitted: the failure is raised in
the main thread (`raise_if_failed`, and by the next `submit`), so the process exits
non-zero and Meltano keeps the last committed bookmark.

Work that must follow the commits so far (deleting batch files whose records they
carry) rides on the last job too (`after_commit`), so it happens when that job commits,
not when the next input line happens to arrive.

A newer STATE may ride on a job already submitted (`attach_state`) until the job seals
itself: `Job.seal`, called by the job as the last step of its transaction, returns the
STATE it carries and closes it to newer ones, so the STATE recorded in the audit trail
inside the transaction is exactly the one emitted after the commit.
"""

from __future__ import annotations

import queue
import threading
import typing as t
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Job:
    """Work for the warehouse thread; `state` is safe to emit once it has committed.

    `run` gets the job itself, to `seal` it inside its transaction.
    """

    run: Callable[[Job], t.Any]
    state: dict | None = None
    result: t.Any = None  # what `run` returned, for `on_committed`
    closed: bool = False  # sealed or committed: its STATE can no longer change
    finished: bool = False  # committed and reported: work added now cannot ride on it
    after: list[Callable[[], None]] = field(default_factory=list)  # run once committed
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def seal(self) -> dict | None:
        """No newer STATE may attach from now on; the STATE to record and emit."""
        with self.lock:
            self.closed = True
            return self.state


class Committer:
    """Runs jobs in order on one thread; failures surface in the main thread."""

    def __init__(self, on_committed: Callable[[Job], None]) -> None:
        self._on_committed = on_committed
        self._queue: queue.Queue[Job | None] = queue.Queue(maxsize=1)
        self._failed: BaseException | None = None
        self._stopping = False
        self._idle = threading.Event()
        self._last: Job | None = None
        self._thread: threading.Thread | None = None

    def _worker(self) -> None:
        while True:
            job = self._queue.get()
            try:
                if job is None:
                    return
                if self._failed is None and not self._stopping:
                    try:
                        job.result = job.run(job)
                        job.seal()  # a job that did not seal itself is closed now
                        self._on_committed(job)
                        with job.lock:
                            job.finished = True
                            after, job.after = job.after, []
                        for work in after:
                            work()
                    except BaseException as exc:  # re-raised in the main thread
                        self._failed = exc
            finally:
                self._queue.task_done()
                self._idle.set()

    def submit(self, job: Job) -> None:
        """Queue `job` once the previous one has finished (raises an earlier failure)."""
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
        """Let the last submitted job, if not yet committed, carry a newer STATE.

        For a STATE that became safe with nothing buffered: it is safe as soon as the
        jobs already submitted have committed, so it rides on the last of them instead
        of making the reader wait for it. False: nothing is in flight (or a job failed).
        """
        job = self._last
        if job is None or self._failed is not None:
            return False
        with job.lock:
            if job.closed:
                return False
            job.state = state
            return True

    def after_commit(self, work: Callable[[], None]) -> None:
        """Run `work` once every job submitted so far has committed: on the loader thread
        right after the last one, or now if it has finished. Never after a failure."""
        if self._failed is not None:
            return
        job = self._last
        if job is not None:
            with job.lock:
                if not job.finished:
                    job.after.append(work)
                    return
        work()

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
