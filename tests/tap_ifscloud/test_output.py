"""Singer output: exact decimals, records buffered, everything else flushed."""

from __future__ import annotations

import contextlib
import io
from datetime import datetime, timezone
from decimal import Decimal

from singer_sdk.singerlib import RecordMessage, StateMessage

from tap_ifscloud.output import FastSingerWriter


class CountingBuffer(io.BytesIO):
    def __init__(self) -> None:
        super().__init__()
        self.flushes = 0

    def flush(self) -> None:
        self.flushes += 1
        super().flush()


def test_decimals_are_written_as_exact_json_numbers_and_only_state_flushes():
    raw = CountingBuffer()
    stdout = io.TextIOWrapper(raw, encoding="utf-8")
    writer = FastSingerWriter()
    amount = Decimal("-123456789012345678.123456")
    with contextlib.redirect_stdout(stdout):
        writer.write_message(
            RecordMessage(
                stream="voucher_rows",
                record={"Amount": amount, "Rate": Decimal("1.10")},
                time_extracted=datetime(2026, 1, 1, tzinfo=timezone.utc),
            )
        )
        assert raw.flushes == 0
        writer.write_message(StateMessage(value={"bookmarks": {}}))
        assert raw.flushes == 1
    lines = raw.getvalue().splitlines()
    assert b'"Amount":-123456789012345678.123456' in lines[0]
    assert b'"Rate":1.10' in lines[0]
    assert b'"time_extracted":"2026-01-01T00:00:00Z"' in lines[0]
    assert lines[1] == b'{"type":"STATE","value":{"bookmarks":{}}}'
