"""Singer messages on stdout, encoded with msgspec and buffered between STATE messages.

The SDK's msgspec writer flushes stdout after every message, a system call per
record. Records are buffered instead; every other message (SCHEMA, STATE,
ACTIVATE_VERSION) flushes, so a target sees state only after the records it covers.
Decimals are written as exact JSON numbers.

`write_records` takes a whole page of records of one stream: one encoder call and
one write for the page, the same bytes as one `write_message(RecordMessage(...))`
per record.
"""

from __future__ import annotations

import datetime
import sys
import typing as t
from collections.abc import Sequence

import msgspec
from singer_sdk.singerlib import Message
from singer_sdk.singerlib.encoding import GenericSingerWriter, SingerMessageType


def _enc_hook(obj: t.Any) -> t.Any:
    if isinstance(obj, datetime.datetime):
        return obj.isoformat()
    return str(obj)


_ENCODER = msgspec.json.Encoder(enc_hook=_enc_hook, decimal_format="number")


def encode_record_lines(records: Sequence[t.Any]) -> bytes:
    """Records as JSON lines, each the `record` object of its RECORD message (for
    batch files, which hold records without their message)."""
    return _ENCODER.encode_lines(records)


class FastSingerWriter(GenericSingerWriter[bytes, Message]):
    """Writes one JSON line per message to stdout."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def serialize_message(self, message: Message) -> bytes:
        self._buffer.clear()
        _ENCODER.encode_into(message.to_dict(), self._buffer)
        self._buffer.extend(b"\n")
        return bytes(self._buffer)

    def write_message(self, message: Message) -> None:
        stdout = sys.stdout
        out = getattr(stdout, "buffer", None)
        if out is None:  # a text-only stream, e.g. a test's StringIO
            stdout.write(self.serialize_message(message).decode("utf-8"))
            return
        out.write(self.serialize_message(message))
        if message.type != SingerMessageType.RECORD:
            out.flush()

    def write_records(
        self,
        stream: str,
        records: Sequence[dict[str, t.Any]],
        *,
        version: int | None = None,
        time_extracted: datetime.datetime | None = None,
    ) -> None:
        """RECORD messages for `records`, byte for byte as `write_message` writes them
        (`RecordMessage.to_dict`'s keys and order, `time_extracted` in UTC), in one
        write and without a flush."""
        if not records:
            return
        tail: dict[str, t.Any] = {}
        if version is not None:
            tail["version"] = version
        if time_extracted is not None:
            if not time_extracted.tzinfo:
                raise ValueError("'time_extracted' must be None or an aware datetime")
            tail["time_extracted"] = time_extracted.astimezone(datetime.timezone.utc)
        messages: t.Iterable[dict[str, t.Any]]
        if len(tail) == 1 and "time_extracted" in tail:
            extracted = tail["time_extracted"]
            messages = (
                {"type": "RECORD", "stream": stream, "record": r, "time_extracted": extracted}
                for r in records
            )
        else:
            messages = ({"type": "RECORD", "stream": stream, "record": r, **tail} for r in records)
        data = _ENCODER.encode_lines(messages)
        stdout = sys.stdout
        out = getattr(stdout, "buffer", None)
        if out is None:
            stdout.write(data.decode("utf-8"))
        else:
            out.write(data)
