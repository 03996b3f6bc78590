"""Singer messages on stdout, encoded with msgspec and buffered between STATE messages.

The SDK's msgspec writer flushes stdout after every message, a system call per
record. Records are buffered instead; every other message (SCHEMA, STATE,
ACTIVATE_VERSION) flushes, so a target sees state only after the records it covers.
Decimals are written as exact JSON numbers.
"""

from __future__ import annotations

import datetime
import sys
import typing as t

import msgspec
from singer_sdk.singerlib import Message
from singer_sdk.singerlib.encoding import GenericSingerWriter, SingerMessageType


def _enc_hook(obj: t.Any) -> t.Any:
    if isinstance(obj, datetime.datetime):
        return obj.isoformat()
    return str(obj)


_ENCODER = msgspec.json.Encoder(enc_hook=_enc_hook, decimal_format="number")


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
