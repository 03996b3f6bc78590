"""BATCH files written a page at a time: records to local JSON Lines files, not stdout.

With `batch_config`, a target reads the records from files named in BATCH messages, so
Meltano relays one line per file instead of one per record (its relay costs about as
much CPU per line as the tap spends on a record). singer-sdk's own batcher takes the
SDK's per-record path and always gzips at level 9; here a page's records are encoded
in one call (the bytes of the RECORD path's `record` objects) and appended to the open
file. Only local storage (`file://` or a plain path) and `jsonl` are written this way;
compression is none or gzip, as the encoding says (level 1: the file lives for minutes).

A file is written under a `.part` name and renamed when complete, so a crashed run never
leaves a file that looks whole; the BATCH message naming it goes out only after that.

The files are the backlog between tap and target. RECORD lines have a pipe that stops a
tap running ahead of its target; files have none, and a tap twice as fast as its target
would leave much of a large first load on disk (up to 589 MB of a million real-shaped
rows, measured). So the tap hands over at most `max_pending_batch_files` files the
target has not loaded yet (`PendingFiles`): target-looker deletes each file once its
records are committed, and the tap waits for that before it writes another.
"""

from __future__ import annotations

import datetime
import gzip
import logging
import time
import typing as t
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from singer_sdk.singerlib import Message
from singer_sdk.singerlib.encoding import SingerMessageType

from ifs_looker_core.batch_files import COMPRESSIONS, GZIP, JSONL, local_path
from tap_ifscloud.output import encode_record_lines

if t.TYPE_CHECKING:
    from collections.abc import Callable, Sequence

GZIP_LEVEL = 1
PART_SUFFIX = ".part"
DEFAULT_MAX_PENDING_FILES = 4


@dataclass(slots=True)
class BatchFileMessage(Message):
    """singer-sdk's BATCH message (stream, encoding, manifest, version) and the time its
    records were read, as a RECORD message says it: the extraction time of the file's
    first page (a reader that does not know the key ignores it)."""

    stream: str
    encoding: t.Any  # batch_config's encoding: format and compression
    manifest: list[str] = field(default_factory=list)
    version: int | None = None
    time_extracted: datetime.datetime | None = None

    def __post_init__(self) -> None:
        self.type = SingerMessageType.BATCH


def local_root(root: str) -> Path | None:
    """The directory a storage root (a `file://` URL or a path) names, or None when it is
    not on this machine."""
    if not urlsplit(root).scheme:
        return Path(root) if root else None
    try:
        return local_path(root)
    except ValueError:
        return None


@dataclass(frozen=True)
class BatchFileSettings:
    """What `batch_config` says about files, for a writer that can honour it."""

    directory: Path
    prefix: str
    compression: str | None
    batch_size: int

    @classmethod
    def from_config(
        cls, format_: str, compression: str | None, root: str, prefix: str | None, batch_size: int
    ) -> BatchFileSettings | None:
        """Settings for this writer, or None when the SDK's batcher must write them
        (another format, or storage that is not a local directory)."""
        directory = local_root(root)
        if format_ != JSONL or directory is None:
            return None
        if compression not in COMPRESSIONS:
            return None
        return cls(directory.resolve(), prefix or "", compression, batch_size)

    @property
    def gzipped(self) -> bool:
        return self.compression == GZIP


class BatchFileWriter:
    """Appends pages of one stream's sync to numbered files of about `batch_size` rows.

    A file is closed at a page boundary once it holds `batch_size` rows or more (pages
    are never split, so the bookmark after a file's last page covers exactly its rows).
    """

    def __init__(
        self,
        settings: BatchFileSettings,
        tap_name: str,
        stream_name: str,
        pending: PendingFiles | None = None,
    ) -> None:
        self.settings = settings
        self.pending = pending
        self._stem = f"{settings.prefix}{tap_name}--{stream_name}-{uuid.uuid4()}"
        self._number = 0
        self._file: t.IO[bytes] | None = None
        self._path: Path | None = None
        self.rows = 0
        self.extracted_at: datetime.datetime | None = None  # the file's first page's

    @property
    def full(self) -> bool:
        return self.rows >= self.settings.batch_size

    def write(self, records: Sequence[t.Any], extracted_at: datetime.datetime) -> None:
        """A page's records, appended to the open file (one is opened if none is)."""
        if not records:
            return
        if self._file is None:
            if self.pending is not None:
                self.pending.wait_for_room()
            self._open()
            self.extracted_at = extracted_at
        assert self._file is not None
        self._file.write(encode_record_lines(records))
        self.rows += len(records)

    def close(self) -> str | None:
        """The open file completed and renamed: its URL, or None when none is open."""
        if self._file is None or self._path is None:
            return None
        self._file.close()
        final = self._path.with_name(self._path.name.removesuffix(PART_SUFFIX))
        self._path.rename(final)
        self._file, self._path, self.rows = None, None, 0
        url = final.as_uri()
        if self.pending is not None:
            self.pending.handed_over(url)
        return url

    def discard(self) -> None:
        """After a failure: the incomplete file removed (no BATCH message names it)."""
        if self._file is not None and self._path is not None:
            self._file.close()
            self._path.unlink(missing_ok=True)
        self._file, self._path, self.rows = None, None, 0

    def _open(self) -> None:
        self._number += 1
        suffix = ".json.gz" if self.settings.gzipped else ".jsonl"
        directory = self.settings.directory
        directory.mkdir(parents=True, exist_ok=True)
        self._path = directory / f"{self._stem}-{self._number}{suffix}{PART_SUFFIX}"
        if self.settings.gzipped:
            self._file = gzip.open(self._path, "xb", compresslevel=GZIP_LEVEL)  # noqa: SIM115 (closed in close/discard)
        else:
            self._file = self._path.open("xb")


class PendingFiles:
    """The files this tap handed over that are still on disk, kept to at most `limit`.

    A target that deletes loaded files (target-looker does, by default) frees a place
    for each one it has committed. A target that keeps them would hold the tap forever,
    so once `give_up_after` seconds pass in waits without a single file of the run
    having gone, the tap says so and stops waiting. `limit` 0: never wait.
    """

    def __init__(
        self,
        limit: int,
        *,
        logger: logging.Logger,
        give_up_after: float = 300.0,
        report_every: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.limit = limit
        self.logger = logger
        self.give_up_after = give_up_after
        self.report_every = report_every
        self._clock = clock
        self._sleep = sleep
        self._pending: list[Path] = []
        self._any_gone = False
        self._waited = 0.0  # seconds spent waiting while no file had gone

    def handed_over(self, url: str) -> None:
        """The file at `url` was named in a BATCH message."""
        if self.limit:
            self._pending.append(local_path(url))

    def wait_for_room(self) -> None:
        """Return once fewer than `limit` handed-over files remain (see the class doc)."""
        if not self.limit or self._room():
            return
        started = last_report = self._clock()
        pause = 0.01
        while True:
            self._sleep(pause)
            pause = min(pause * 2, 0.25)
            now = self._clock()
            if self._room():
                if not self._any_gone:
                    self._waited += now - started
                return
            if not self._any_gone and self._waited + now - started >= self.give_up_after:
                self._stop_waiting()
                return
            if now - last_report >= self.report_every:
                last_report = now
                self.logger.info(
                    "Waiting for the target to load %d batch file(s) (at most %d pending, "
                    "max_pending_batch_files); the oldest is %s",
                    len(self._pending),
                    self.limit,
                    self._pending[0],
                )

    def _room(self) -> bool:
        still = [path for path in self._pending if path.exists()]
        if len(still) < len(self._pending):
            self._any_gone = True
        self._pending = still
        return len(still) < self.limit

    def _stop_waiting(self) -> None:
        self.logger.warning(
            "None of the %d batch files handed over has been removed in %.0f s: the target "
            "keeps them (target-looker with delete_batch_files off, or another target). "
            "No longer waiting for it in this run; set max_pending_batch_files to 0 to "
            "never wait",
            len(self._pending),
            self.give_up_after,
        )
        self.limit = 0
        self._pending = []
