"""One record never stops a run (SPEC 5.2, 5.3): it becomes a reject with its stream,
input line and reason, and the rest loads. Only broken protocol stops a run.

Every test runs once per warehouse (the `config` fixture).
"""

from __future__ import annotations

import json

import pytest
from singer_sdk.exceptions import RecordsWithoutSchemaException
from singer_sdk.singerlib.exceptions import InvalidInputLine

from target_looker.reader import scan_object

from .singer_io import lines, query, record, run, schema, state

PARTS = schema(
    "parts",
    {
        "Part": {"type": "string"},
        "Qty": {"type": ["integer", "null"]},
        "Note": {"type": ["string", "null"], "maxLength": 20},
        "Extra": {"type": ["object", "null"]},
    },
    ["Part"],
)
DEPTH = 5000


def deep_record(part: str) -> str:
    """A RECORD whose `Extra` nests DEPTH arrays (json.dumps itself would recurse too deep)."""
    nested = "[" * DEPTH + "]" * DEPTH
    return (
        f'{{"type": "RECORD", "stream": "parts", "record": '
        f'{{"Part": "{part}", "Extra": {{"x": {nested}}}}}}}'
    )


def rejects(config: dict) -> list[tuple]:
    return query(
        config,
        "SELECT input_line, stream, reason, CAST(record AS VARCHAR) FROM {s}._load_rejects "
        "ORDER BY input_line",
    )


def run_row(config: dict) -> tuple:
    [row] = query(
        config,
        "SELECT status, records_in, rows_inserted, rows_updated, rows_skipped, rows_rejected "
        "FROM {s}._load_runs",
    )
    return row


def test_unloadable_records_are_rejects_with_their_input_line(config: dict) -> None:
    missing_key = record("parts", {"Qty": 4})
    text = lines(
        PARTS,  # line 1
        record("parts", {"Part": "P1", "Qty": 1}),  # 2
        state({"n": 1}),  # 3
        missing_key,  # 4: lacks the key property
        record("parts", {"Part": None, "Qty": 5}),  # 5: null key
        record("parts", {"Part": "P6", "Note": "bad \ud800 here"}),  # 6: lone surrogate
        deep_record("P7"),  # 7: nested DEPTH levels
        record("parts", {"Part": "P8", "Note": "emoji \U0001f600 ok"}),  # 8: a surrogate *pair*
        record("parts", {"Part": "P9", "Note": "far longer than twenty characters"}),  # 9
        record("parts", {"Part": "\udc00"}),  # 10: lone low surrogate in the key
        '{"type": "RECORD", "stream": "parts", "record": {"Part": "P11", "Qty": NaN}}',  # 11
        state({"n": 2}),  # 12
    )
    emitted = run(config, text)
    assert emitted[-1] == {"n": 2}  # the run finished and passed the last STATE on
    assert query(config, "SELECT part, note FROM {s}.parts ORDER BY part") == [
        ("P1", None),
        ("P8", "emoji \U0001f600 ok"),
    ]
    found = rejects(config)
    assert [(line, stream) for line, stream, _, _ in found] == [
        (n, "parts") for n in (4, 5, 6, 7, 9, 10, 11)
    ]
    reasons = {line: reason for line, _, reason, _ in found}
    assert "lacks key properties ['Part']" in reasons[4]
    assert "Part" in reasons[5]
    assert "lone UTF-16 surrogate (\\ud800)" in reasons[6]
    assert f"nested {DEPTH + 2} levels deep" in reasons[7]
    assert "maxLength 20" in reasons[9]
    assert "lone UTF-16 surrogate (\\udc00)" in reasons[10]
    assert "a number is NaN" in reasons[11]
    raws = {line: raw for line, _, _, raw in found}
    assert json.loads(raws[4]) == {"Qty": 4}
    assert raws[6] == '{"Part": "P6", "Note": "bad \\ud800 here"}'  # verbatim, escape kept
    assert json.loads(raws[6])["Note"] == "bad \ud800 here"
    assert scan_object(raws[7]).depth == DEPTH + 2  # the record itself, kept whole
    assert run_row(config) == ("succeeded", 9, 2, 0, 0, 7)


def test_an_overlong_value_is_judged_with_the_rest_of_its_record(config: dict) -> None:
    """The decoder checks string lengths first; a record it refuses for that is decoded
    again without the check, so its reject and reason are those of the whole record."""
    emoji = "\U0001f600"  # one character, two UTF-16 units, four UTF-8 bytes
    text = lines(
        PARTS,
        record("parts", {"Part": "P1", "Note": "x" * 20}),  # 2: at the limit
        record("parts", {"Part": "P2", "Note": emoji * 20}),  # 3: 20 characters
        record("parts", {"Part": "P3", "Note": "x" * 21, "Qty": "many"}),  # 4: Qty is wrong too
        record("parts", {"Part": "P4", "Note": "x" * 21, "Unknown": 1}),  # 5: a field not loaded
        record("parts", {"Part": "P5", "Note": emoji * 21}),  # 6
    )
    run(config, text)
    assert query(config, "SELECT part, note FROM {s}.parts ORDER BY part") == [
        ("P1", "x" * 20),
        ("P2", emoji * 20),
    ]
    reasons = {line: reason for line, _, reason, _ in rejects(config)}
    assert sorted(reasons) == [4, 5, 6]
    assert "Qty" in reasons[4] and "maxLength" not in reasons[4]
    assert "'Note' is 21 characters, longer than its maxLength 20" in reasons[5]
    assert "'Note' is 21 characters, longer than its maxLength 20" in reasons[6]


def test_the_reject_path_keeps_state_behind_its_batch(config: dict) -> None:
    """A rejected record is a record like any other: STATE after it waits for its batch."""
    config = {**config, "batch_size_rows": 2}
    text = lines(
        PARTS,
        record("parts", {"Part": "P1"}),
        record("parts", {"Qty": 1}),  # a reject fills the batch like a row
        state({"n": 1}),
        deep_record("P3"),
        state({"n": 2}),
    )
    assert run(config, text)[-1] == {"n": 2}
    [(batch_1,), (batch_2,)] = query(
        config, "SELECT records_in FROM {s}._load_batches ORDER BY committed_at"
    )
    assert (batch_1, batch_2) == (2, 1)
    assert [r[0] for r in rejects(config)] == [3, 5]


def test_a_record_before_its_schema_still_stops_the_run_even_if_undecodable(
    config: dict,
) -> None:
    with pytest.raises(RecordsWithoutSchemaException, match="parts"):
        run(config, lines(deep_record("P1")))


@pytest.mark.parametrize(
    "line",
    [
        '{"type": "RECORD", "stream": "parts", "record": {"Part": "P1",}}',  # not JSON
        '{"type": "RECORD", "stream": "parts", "record": {"Part": "\\ud800"}',  # cut short
        '{"type": "RECORD", "stream": 7, "record": {"Part": "\\ud800"}}',  # no stream name
        '{"type": "RECORD", "stream": "parts", "version": "x", "record": {"Part": "\\ud800"}}',
    ],
)
def test_broken_protocol_still_stops_the_run(config: dict, line: str) -> None:
    with pytest.raises(InvalidInputLine, match="input line 3"):
        run(config, lines(PARTS, record("parts", {"Part": "P1"})) + line + "\n")
    [(status,)] = query(config, "SELECT status FROM {s}._load_runs")
    assert status == "failed"


def test_a_record_that_is_not_utf8_is_a_reject_that_says_where(config: dict) -> None:
    latin1 = '{"type": "RECORD", "stream": "parts", "record": {"Part": "P2", "Note": "café"}}'
    data = (
        lines(PARTS, record("parts", {"Part": "P1"})).encode()  # lines 1-2
        + latin1.encode("latin-1")  # 3: é as the single byte 0xe9
        + b"\n"
        + lines(record("parts", {"Part": "P4"}), state({"n": 1})).encode()
    )
    assert run(config, data) == [{"n": 1}]
    assert query(config, "SELECT part FROM {s}.parts ORDER BY part") == [("P1",), ("P4",)]
    [(line, stream, reason, raw)] = rejects(config)
    assert (line, stream) == (3, "parts")
    assert "the record is not valid UTF-8: byte 0xe9 at offset 27" in reason
    assert raw == '{"Part": "P2", "Note": "caf\ufffd"}'  # the byte replaced, as the reason says
    assert run_row(config) == ("succeeded", 3, 2, 0, 0, 1)


def test_a_message_whose_envelope_is_not_utf8_stops_the_run_naming_its_line(
    config: dict,
) -> None:
    data = lines(PARTS, record("parts", {"Part": "P1"})).encode() + (
        b'{"type": "RECORD", "stream": "pa\xffrts", "record": {"Part": "P2"}}\n'
    )
    with pytest.raises(
        InvalidInputLine, match="input line 3 is not valid UTF-8: byte 0xff at offset 32"
    ):
        run(config, data)


def test_a_mapped_stream_rejects_into_its_alias(config: dict) -> None:
    config = {**config, "stream_maps": {"parts": {"__alias__": "spare_parts"}}}
    run(config, lines(PARTS, record("parts", {"Part": "P1"}), deep_record("P2")))
    assert query(config, "SELECT part FROM {s}.spare_parts") == [("P1",)]
    assert [(r[0], r[1]) for r in rejects(config)] == [(3, "spare_parts")]


def test_a_mapped_stream_rejects_a_record_that_is_not_utf8_too(config: dict) -> None:
    config = {**config, "stream_maps": {"parts": {"__alias__": "spare_parts"}}}
    latin1 = '{"type": "RECORD", "stream": "parts", "record": {"Part": "P2", "Note": "café"}}'
    data = lines(PARTS, record("parts", {"Part": "P1"})).encode() + latin1.encode("latin-1")
    run(config, data + b"\n")
    assert query(config, "SELECT part FROM {s}.spare_parts") == [("P1",)]
    [(line, stream, reason, _)] = rejects(config)
    assert (line, stream) == (3, "spare_parts")
    assert "the record is not valid UTF-8: byte 0xe9 at offset 27" in reason


def test_scan_object_tells_json_from_not_json() -> None:
    scan = scan_object('{"a": [1, {"b": "x\\ud800"}], "c": null}')
    assert scan.members == {"a": (6, 27), "c": (34, 38)}
    assert (scan.depth, scan.surrogate) == (3, "\\ud800")
    assert scan_object('{"e": "\\ud83d\\ude00"}').surrogate is None  # a pair is a character
    assert scan_object('{"n": [1, -Infinity]}').non_finite == "-Infinity"
    for text in ('{"a":1,}', '{"a" 1}', "[1]", '{"a":1} x', '{"a":01}', "{", '{"a":[1,]}'):
        with pytest.raises(ValueError, match=r"not JSON|unexpected|not a JSON object|ends early"):
            scan_object(text)
