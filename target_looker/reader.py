"""A Singer reader that leaves records undecoded until their stream's typed decoder.

Each line is decoded once into an envelope whose `record` stays raw JSON; the sink
then decodes the record straight into its typed Struct (validation included). Other
messages (SCHEMA, STATE, ...) are rare and go through a generic decoder that reads
numbers as Decimal.
"""

from __future__ import annotations

import decimal
import sys
import typing as t
from collections import Counter
from collections.abc import Callable

import msgspec
from singer_sdk.singerlib.encoding.base import GenericSingerReader
from singer_sdk.singerlib.exceptions import InvalidInputLine

_SNIPPET = 200
# stdin is read in large blocks: each read releases the GIL, and getting it back from
# the busy loader thread can take a whole switch interval (5 ms), so 8 KiB reads
# (a few records each) would leave the reader waiting much of the time.
_READ_BUFFER = 1 << 20
# A JSON-escaped NUL character; PostgreSQL text cannot hold one, so sinks look closer.
_NUL_BYTES, _NUL_TEXT = b"\\u0000", "\\u0000"


class RecordEnvelope(msgspec.Struct):
    """A Singer message with the record left as raw JSON bytes."""

    type: str
    stream: str | None = None
    record: msgspec.Raw = msgspec.Raw(b"null")
    time_extracted: str | None = None
    version: int | None = None


_decode_envelope = msgspec.json.Decoder(RecordEnvelope).decode
decode_generic = msgspec.json.Decoder(float_hook=decimal.Decimal).decode


def _snippet(line: str | bytes) -> str:
    text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
    return text[:_SNIPPET] + ("..." if len(text) > _SNIPPET else "")


class FastSingerReader(GenericSingerReader[bytes]):
    """Reads Singer lines as bytes from stdin (any text or binary file given works too).

    RECORD callbacks receive `(RecordEnvelope, has_nul)`: whether the line holds `\\u0000`.
    """

    #: Called with the exception before any error leaves `process_lines`.
    on_error: Callable[[BaseException], None] | None = None

    @property
    def default_input(self) -> t.IO[bytes]:
        return open(sys.stdin.fileno(), "rb", buffering=_READ_BUFFER, closefd=False)

    def deserialize_json(self, line: str | bytes) -> dict:
        try:
            message = decode_generic(line)
        except msgspec.DecodeError as exc:
            raise InvalidInputLine(f"not valid JSON ({exc}): {_snippet(line)}") from None
        if not isinstance(message, dict):
            raise InvalidInputLine(f"not a Singer message (not an object): {_snippet(line)}")
        return message

    def process_lines(
        self,
        file_input: t.IO | None,
        callbacks: dict[str, Callable[[t.Any], None]],
    ) -> Counter[str]:
        try:
            return self._process_lines(file_input or self.default_input, callbacks)
        except BaseException as exc:
            if self.on_error is not None:
                self.on_error(exc)
            raise

    def _process_lines(
        self, lines: t.Iterable, callbacks: dict[str, Callable[[t.Any], None]]
    ) -> Counter[str]:
        stats: Counter[str] = Counter()
        records = 0
        on_record = callbacks["RECORD"]
        for number, line in enumerate(lines, 1):
            if not line or line.isspace():  # unlike strip(), copies nothing
                continue
            try:
                envelope = _decode_envelope(line)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                raise InvalidInputLine(
                    f"input line {number} is not a Singer message ({exc}): {_snippet(line)}"
                ) from None
            kind = envelope.type
            if kind == "RECORD":
                if envelope.stream is None:
                    raise InvalidInputLine(f"input line {number}: RECORD without 'stream'")
                on_record(envelope, (_NUL_BYTES if isinstance(line, bytes) else _NUL_TEXT) in line)
                records += 1
                continue
            callback = callbacks.get(kind)
            if callback is None:
                raise InvalidInputLine(f"input line {number}: unknown message type {kind!r}")
            callback(self.deserialize_json(line))
            stats[kind] += 1
        if records:
            stats["RECORD"] += records
        return stats
