"""Singer BATCH messages: files of records that the tap hands over instead of RECORD lines.

A BATCH message names the files (`manifest`, `file://` URLs) holding one JSON record per
line; the target reads them and feeds every line through the same path as a RECORD
line (sinks, rejects, commits, STATE). This module is everything about the files:

- `BatchManifest`: the message, checked before any file is read. Only JSON Lines,
  plain or gzip, in local files: anything else stops the run with an error naming the
  stream, the file and the problem (broken protocol, like a line on stdin that is not
  JSON).
- `BatchFile.blocks`: a file's lines, read in large blocks (the hot path does no more
  per line than split them).
- Line numbers: a record from a batch file is numbered `(file number << 40) + its line
  in the file`, a plain int like a stdin line number, so it costs the hot path nothing;
  `input_position` turns it back into (line in the file, file) for a reject and its
  reason, and `describe_line` for an error.
- `undecodable_record_reason`: a line that msgspec refused is looked at closer, and only
  then: not JSON at all stops the run (so a local file that is not ours never lands in
  `_load_rejects`), JSON that cannot be loaded is one reject.
- `BatchFileCleanup`: a file is deleted once every record read from it is committed
  (the STATE covering it is safe), never before; a failed run keeps the rest.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import itertools
import os
import stat
import typing as t
import zlib
from dataclasses import dataclass
from functools import partial

from singer_sdk.singerlib.exceptions import InvalidInputLine

from ifs_looker_core.batch_files import COMPRESSIONS, GZIP, JSONL, local_path
from target_looker.reader import explain_undecodable
from target_looker.state_ledger import StateLedger

if t.TYPE_CHECKING:
    import logging
    from collections.abc import Callable, Hashable, Iterator, Mapping

    import msgspec

# Each read: large, so the per-line work is splitting bytes, not reading them. Reads
# release the GIL, and getting it back from the busy loader thread can take a switch
# interval (see reader._READ_BUFFER), so few reads are better.
_BLOCK_BYTES = 1 << 20
_GZIP_MAGIC = b"\x1f\x8b"
_INT64 = (-(2**63), 2**63 - 1)  # a table version is a BIGINT
# Line numbers of batch-file records: (file number << _FILE_SHIFT) + line in the file.
# Stdin line numbers stay below 2**40 (a trillion lines), so the two never meet.
_FILE_SHIFT = 40
_LINE_MASK = (1 << _FILE_SHIFT) - 1
# File number -> path, for the whole process (one short string per file read; the
# loader thread reads it for rejects found at commit time).
_FILES_BY_NUMBER: dict[int, str] = {}
_file_numbers = itertools.count(1)


class BatchFileError(InvalidInputLine):
    """A BATCH message or one of its files cannot be read: broken protocol, the run stops."""


# Line numbers ---------------------------------------------------------------------------


def first_line_number(path: str) -> int:
    """The number the sinks see for the first line of `path` (read once more, another)."""
    number = next(_file_numbers)
    _FILES_BY_NUMBER[number] = path
    return (number << _FILE_SHIFT) + 1


def input_position(line: int) -> tuple[int, str | None]:
    """A record's line number as the sinks hold it -> (line in its input, batch file or
    None for stdin). A reject stores the first and names the second."""
    file_number = line >> _FILE_SHIFT
    if file_number <= 0:
        return line, None
    return line & _LINE_MASK, _FILES_BY_NUMBER.get(file_number, f"#{file_number}")


def describe_line(line: int) -> str:
    """Where a record came from, for errors and logs: `input line 7` or
    `line 7 of batch file /tmp/x.jsonl`."""
    number, path = input_position(line)
    return f"input line {number}" if path is None else f"line {number} of batch file {path}"


def with_origin(reason: str, line: int) -> str:
    """A reject's reason, naming the batch file it came from (stdin records: unchanged;
    `_load_rejects.input_line` holds the line number either way)."""
    number, path = input_position(line)
    return reason if path is None else f"batch file {path}, line {number}: {reason}"


def undecodable_record_reason(record: msgspec.Raw | bytes, error: BaseException, line: int) -> str:
    """Why a record that msgspec refused even generically cannot be loaded (one reject).

    Raises BatchFileError when its text is not JSON at all: broken protocol, and the
    text (a batch file can be any local file) must never be copied into the warehouse.
    A RECORD line on stdin never gets here unchecked (the reader parsed it whole).
    """
    try:
        return explain_undecodable(record, error)
    except ValueError as not_json:
        raise BatchFileError(
            f"{describe_line(line)} is not JSON ({not_json}): a batch file holds one JSON "
            "record per line"
        ) from None


# The message ----------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchFile:
    """One file of a BATCH message: a local path, plain or gzip JSON Lines."""

    stream: str
    url: str
    path: str
    compressed: bool

    def error(self, problem: str) -> BatchFileError:
        return BatchFileError(f"stream {self.stream!r}, batch file {self.path}: {problem}")

    def blocks(self) -> Iterator[tuple[int, list[bytes]]]:
        """The file's lines without their `\\n`, a block at a time: (number of the block's
        first line, as `input_position` reads it; the lines). A last line without `\\n`
        counts too. Raises BatchFileError when the file cannot be read."""
        number = first_line_number(self.path)
        pending: list[bytes] = []  # pieces of a line that has not ended yet
        with self._open() as stream:
            for block in self._read_blocks(stream):
                if b"\n" not in block:
                    pending.append(block)
                    continue
                lines = block.split(b"\n")
                if pending:
                    lines[0] = b"".join([*pending, lines[0]])
                    pending = []
                tail = lines.pop()
                if tail:
                    pending.append(tail)
                yield number, lines
                number += len(lines)
        if pending:
            yield number, [b"".join(pending)]

    @contextlib.contextmanager
    def _open(self) -> Iterator[t.BinaryIO]:
        """The file's (decompressed) bytes; closed again whatever happens."""
        with self._open_regular_file() as raw:
            if self.compressed:
                with gzip.GzipFile(fileobj=raw, mode="rb") as unzipped:
                    yield t.cast("t.BinaryIO", unzipped)
            else:
                yield t.cast("t.BinaryIO", raw)

    def _open_regular_file(self) -> io.FileIO:
        """The file opened for reading, once it is known to be a regular file (opened
        without blocking: a FIFO or a device is refused, never read)."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            raise self.error("the file does not exist") from None
        except OSError as exc:
            raise self.error(f"the file cannot be opened ({exc.strerror or exc})") from None
        try:
            regular = stat.S_ISREG(os.fstat(fd).st_mode)
        except OSError:
            regular = False
        if not regular:
            os.close(fd)
            raise self.error("not a regular file")
        return io.FileIO(fd, "r", closefd=True)

    def _read_blocks(self, stream: t.BinaryIO) -> Iterator[bytes]:
        """Large blocks of the (decompressed) file; read errors name the file."""
        first = True
        while True:
            try:
                block = stream.read(_BLOCK_BYTES)
            except gzip.BadGzipFile:  # its message quotes the file's first bytes: not those
                raise self.error(
                    "the file is not gzip-compressed but the BATCH message says gzip"
                ) from None
            except (OSError, EOFError, zlib.error) as exc:
                raise self.error(f"the file cannot be read ({exc})") from None
            if not block:
                return
            if first and not self.compressed and block.startswith(_GZIP_MAGIC):
                raise self.error(
                    "the file is gzip-compressed but the BATCH message says compression none"
                )
            first = False
            yield block


@dataclass(frozen=True)
class BatchManifest:
    """A BATCH message, checked: its stream, files, and what RECORD messages would carry."""

    stream: str
    files: list[BatchFile]
    time_extracted: str | None  # every record's, as RECORD's `time_extracted`
    version: int | None  # the full-table sync's version, as RECORD's `version`

    @classmethod
    def from_message(cls, message: Mapping[str, t.Any]) -> BatchManifest:
        """Check the whole message before any file is read; raises BatchFileError."""
        stream = message.get("stream")
        if not isinstance(stream, str):
            raise BatchFileError(f"BATCH message without a stream name: stream {stream!r}")
        compressed = _checked_encoding(stream, message.get("encoding"))
        manifest = message.get("manifest")
        if not isinstance(manifest, list) or not all(isinstance(u, str) for u in manifest):
            raise BatchFileError(f"stream {stream!r}: BATCH 'manifest' must be a list of URLs")
        version, extracted = message.get("version"), message.get("time_extracted")
        if version is not None and not (type(version) is int and _INT64[0] <= version <= _INT64[1]):
            raise BatchFileError(f"stream {stream!r}: BATCH 'version' {version!r} is not an int")
        if extracted is not None and not isinstance(extracted, str):
            raise BatchFileError(
                f"stream {stream!r}: BATCH 'time_extracted' {extracted!r} is not a string"
            )
        files = [BatchFile(stream, url, _local_path(stream, url), compressed) for url in manifest]
        return cls(stream, files, extracted, version)


def _checked_encoding(stream: str, encoding: t.Any) -> bool:
    """Whether the files are gzip-compressed; anything but JSON Lines (plain or gzip) is
    refused."""
    if not isinstance(encoding, dict):
        raise BatchFileError(f"stream {stream!r}: BATCH message without an 'encoding'")
    file_format, compression = encoding.get("format"), encoding.get("compression")
    if file_format != JSONL:
        raise BatchFileError(
            f"stream {stream!r}: batch files in format {file_format!r} are not supported "
            f"(only {JSONL!r}: one JSON record per line)"
        )
    if compression not in COMPRESSIONS:
        raise BatchFileError(
            f"stream {stream!r}: batch file compression {compression!r} is not supported "
            "(only none or 'gzip')"
        )
    return compression == GZIP


def _local_path(stream: str, url: str) -> str:
    """The local path a `file://` URL names; other schemes and hosts are refused."""
    try:
        path = str(local_path(url))
    except ValueError as exc:
        raise BatchFileError(f"stream {stream!r}, batch file {url!r}: {exc}") from None
    if not os.path.isabs(path):
        raise BatchFileError(f"stream {stream!r}, batch file {url!r}: not an absolute path")
    return path


# Clean-up -------------------------------------------------------------------------------


class BatchFileCleanup:
    """Deletes batch files once every record read from them is committed, never before.

    The tap wrote the files for this target alone; deleting them is what keeps a
    scheduled pipeline from filling its disk. A file's records are numbered like every
    record (the target's `StateLedger.last_seq`), and a file becomes safe exactly when a
    STATE received right after its last record would be: a ledger of its own, fed the
    same buffered and held records as the target's, says when. Safe means handed to the
    loader thread, not yet committed: the file is deleted by the loader thread right
    after the job carrying its last records commits (`delete_when_committed`), even if
    no more input comes (a tap that bounds its files on disk waits for that), or at the
    end of the run (`committed`). A failed run keeps every file not deleted yet, and
    says so.
    """

    def __init__(self, *, enabled: bool, logger: logging.Logger) -> None:
        self.enabled = enabled
        self.logger = logger
        self._ledger = StateLedger()  # a "STATE" {"files": n} follows the n-th file read
        self._read: list[tuple[int, BatchFile, int]] = []  # (n, file, records), not safe yet
        self._handed_over: list[tuple[BatchFile, int]] = []  # safe once submitted jobs commit
        self._released: list[BatchFile] = []  # deleted by the loader thread after a commit
        self._reading: BatchFile | None = None
        self._count = 0

    def reading(self, batch_file: BatchFile) -> None:
        """`batch_file` is being read (kept, and named, if the run fails now)."""
        self._reading = batch_file

    def file_read(self, batch_file: BatchFile, first_seq: int, last_seq: int) -> None:
        """Every line of `batch_file` went to the sinks: records `first_seq`..`last_seq`
        (the target's record numbers; none when `last_seq < first_seq`)."""
        self._reading = None
        if not self.enabled:
            return
        self._count += 1
        self._ledger.last_seq = last_seq
        self._ledger.state_received({"files": self._count})
        self._read.append((self._count, batch_file, last_seq - first_seq + 1))

    def hold(self, what: Hashable, first_seq: int) -> None:
        """As `StateLedger.hold`: committed records not visible yet (an overwrite)."""
        if self.enabled:
            self._ledger.hold(what, first_seq)

    def release(self, what: Hashable) -> None:
        """As `StateLedger.release`."""
        if self.enabled:
            self._ledger.release(what)

    def handed_over(self, oldest_buffered: int | None) -> None:
        """Records before `oldest_buffered` (None: all) are with the loader thread: the
        files holding only such records are deleted once the jobs submitted so far (and
        the one about to be) have committed."""
        if not self._read:
            return
        safe = self._ledger.take_safe(oldest_buffered)
        if safe is None:
            return
        upto = safe["files"]
        done = [entry for entry in self._read if entry[0] <= upto]
        self._read = self._read[len(done) :]
        self._handed_over.extend((batch_file, records) for _, batch_file, records in done)

    def delete_when_committed(self, after_commit: Callable[[Callable[[], None]], None]) -> None:
        """The files handed over go once the jobs submitted so far have committed:
        `after_commit` runs the deletion then (see `LoadSession.after_commit`)."""
        files, self._handed_over = self._handed_over, []
        if files:
            self._released.extend(batch_file for batch_file, _ in files)
            after_commit(partial(self._delete, files))

    def committed(self) -> None:
        """Every job submitted so far has committed: delete the files handed over."""
        files, self._handed_over = self._handed_over, []
        self._delete(files)

    def _delete(self, files: list[tuple[BatchFile, int]]) -> None:
        for batch_file, records in files:
            try:
                os.unlink(batch_file.path)
            except FileNotFoundError:
                continue  # named twice in the input, or removed by someone else
            except OSError as exc:  # the data is committed: never the run's failure
                self.logger.warning("Could not delete batch file %s: %s", batch_file.path, exc)
                continue
            self.logger.info(
                "Deleted batch file %s: its %d records are committed", batch_file.path, records
            )

    def keep_on_failure(self) -> None:
        """The run failed: say which files stay (their records are not all committed, or
        not known to be)."""
        files = self._released + [f for f, _ in self._handed_over]
        files += [f for _, f, _ in self._read]
        files += [f for f in (self._reading,) if f is not None]
        kept = [f.path for f in files if os.path.exists(f.path)]
        if self.enabled and kept:
            self.logger.warning(
                "Run failed: keeping %d batch file(s) whose records are not all committed: %s",
                len(kept),
                ", ".join(dict.fromkeys(kept)),
            )


__all__ = [
    "BatchFile",
    "BatchFileCleanup",
    "BatchFileError",
    "BatchManifest",
    "describe_line",
    "input_position",
    "undecodable_record_reason",
    "with_origin",
]
