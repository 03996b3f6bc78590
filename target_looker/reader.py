"""A Singer reader that leaves records undecoded until their stream's typed decoder.

Each line is decoded once into an envelope whose `record` stays raw JSON; the sink
then decodes the record straight into its typed Struct (validation included). Other
messages (SCHEMA, STATE, ...) are rare and go through a generic decoder that reads
numbers as Decimal.

Only broken protocol stops a run (SPEC 5.2): a line that is not JSON, or not a Singer
message. A RECORD line that *is* JSON but that msgspec cannot decode (a lone UTF-16
surrogate escape such as `"\\ud800"`, nesting deeper than the decoder's recursion
limit, or a bare `NaN`/`Infinity` as Python's `json.dumps` writes them) is handed to
`on_bad_record` with its input line number and the reason, and the target rejects that
one record. Telling the two apart takes `scan_object`, an iterative
(any depth) JSON checker that runs only for lines msgspec refused.
"""

from __future__ import annotations

import decimal
import json
import re
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

# One JSON token after optional whitespace: punctuation, string, number or literal. Each
# alternative of the string body matches one character or one escape, so a bad string
# fails in linear time. Lone surrogate escapes are grammatical JSON (RFC 8259, 8.2).
_TOKEN = re.compile(
    r"[ \t\n\r]*(?:"
    r"([{}\[\]:,])"
    r'|("(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*")'
    r"|(-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)"
    r"|(true|false|null|NaN|-?Infinity))"
)
_NON_FINITE = ("NaN", "Infinity", "-Infinity")  # not JSON, but what Python's json writes
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_INT64 = (-(2**63), 2**63 - 1)  # a table version is a BIGINT
# Parser states of `scan_object`.
_VALUE, _VALUE_OR_CLOSE, _KEY, _KEY_OR_CLOSE, _COLON, _COMMA_OR_CLOSE, _END = range(7)


class ObjectScan(msgspec.Struct):
    """What `scan_object` found in a JSON object text."""

    members: dict[str, tuple[int, int]]  # top-level member -> (start, end) of its value text
    depth: int  # deepest nesting of objects and arrays (the object itself is 1)
    surrogate: str | None  # the first lone surrogate in a string, as its escape
    non_finite: str | None = None  # the first bare NaN/Infinity/-Infinity


def scan_object(text: str, *, any_value: bool = False) -> ObjectScan:
    """Check that `text` is one JSON object, at any depth and without recursion.

    Raises ValueError when it is not. Bare NaN/Infinity are let through (and reported).
    Slow (a regex match per token): only for the rare line that msgspec refused, to
    tell broken protocol from one undecodable record. `any_value`: any one JSON value
    will do (a batch file's line is a bare record, which may be an array or a string).
    """
    members: dict[str, tuple[int, int]] = {}
    stack: list[str] = []
    state, depth, surrogate, non_finite = _VALUE, 0, None, None
    key, start, pos, end = "", 0, 0, len(text)
    while pos < end:
        match = _TOKEN.match(text, pos)
        if match is None:
            if text[pos:].strip(" \t\n\r"):
                raise ValueError(f"not JSON at character {pos}")
            break
        if state == _END:
            raise ValueError(f"more than one JSON value (character {pos})")
        pos = match.end()
        punct, string = match.group(1), match.group(2)
        if string is not None and surrogate is None and _SURROGATE_ESCAPE.search(string):
            surrogate = _lone_surrogate(string)
        elif non_finite is None and match.group(4) in _NON_FINITE:
            non_finite = match.group(4)
        if punct == ":":
            if state != _COLON:
                raise ValueError(f"unexpected ':' at character {pos - 1}")
            state = _VALUE
            continue
        if punct == ",":
            if state != _COMMA_OR_CLOSE:
                raise ValueError(f"unexpected ',' at character {pos - 1}")
            state = _KEY if stack[-1] == "{" else _VALUE
            continue
        if punct in ("}", "]"):
            opener = "{" if punct == "}" else "["
            allowed = (_COMMA_OR_CLOSE, _KEY_OR_CLOSE if opener == "{" else _VALUE_OR_CLOSE)
            if not stack or stack[-1] != opener or state not in allowed:
                raise ValueError(f"unexpected {punct!r} at character {pos - 1}")
            stack.pop()
        elif string is not None and state in (_KEY, _KEY_OR_CLOSE):
            if len(stack) == 1:
                key = json.loads(string)
            state = _COLON
            continue
        else:  # a value begins: a container, or a whole scalar
            if state not in (_VALUE, _VALUE_OR_CLOSE):
                raise ValueError(f"unexpected value at character {match.start(match.lastindex)}")
            if not stack and punct != "{" and not any_value:
                raise ValueError("not a JSON object")
            if len(stack) == 1:
                start = match.start(match.lastindex)
            if punct is not None:  # "{" or "["
                stack.append(punct)
                depth = max(depth, len(stack))
                state = _KEY_OR_CLOSE if punct == "{" else _VALUE_OR_CLOSE
                continue
        # A value just ended: a scalar, or a container that closed.
        if not stack:
            state = _END
        else:
            if len(stack) == 1:
                members[key] = (start, pos)
            state = _COMMA_OR_CLOSE
    if state != _END:
        raise ValueError("JSON text ends early")
    return ObjectScan(members, depth, surrogate, non_finite)


def _lone_surrogate(string_token: str) -> str | None:
    """The first unpaired surrogate in a JSON string token, as a `\\uXXXX` escape."""
    for char in json.loads(string_token):  # Python's decoder keeps lone surrogates
        if 0xD800 <= ord(char) <= 0xDFFF:
            return f"\\u{ord(char):04x}"
    return None


def not_utf8(data: bytes | str) -> str | None:
    """Where `data` stops being UTF-8 ("byte 0xe9 at offset 27"), or None when it is.

    msgspec checks UTF-8 only inside the strings it decodes, and names the position
    within the string; this names it within the whole text."""
    if isinstance(data, str):
        return None
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"byte 0x{exc.object[exc.start]:02x} at offset {exc.start}"
    return None


def _snippet(line: str | bytes) -> str:
    text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
    return text[:_SNIPPET] + ("..." if len(text) > _SNIPPET else "")


def salvage_record(line: str | bytes, error: BaseException) -> tuple[RecordEnvelope, str] | None:
    """A RECORD line msgspec refused: its envelope and why its record cannot be loaded,
    or None when the line is broken protocol (not JSON, not a RECORD with a stream)."""
    try:
        text = line.decode("utf-8") if isinstance(line, bytes) else line
        scan = scan_object(text)
        fields = {
            name: json.loads(text[start:stop])
            for name, (start, stop) in scan.members.items()
            if name in ("type", "stream", "time_extracted", "version")
        }
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError too
        return None
    stream, version = fields.get("stream"), fields.get("version")
    extracted = fields.get("time_extracted")
    if (
        fields.get("type") != "RECORD"
        or not isinstance(stream, str)
        or not (version is None or (type(version) is int and _INT64[0] <= version <= _INT64[1]))
        or not (extracted is None or isinstance(extracted, str))
    ):
        return None
    span = scan.members.get("record")
    raw = text[span[0] : span[1]].encode() if span else b"null"
    reason = _undecodable_reason(scan, error, record_depth=max(scan.depth - 1, 0))
    return RecordEnvelope("RECORD", stream, msgspec.Raw(raw), extracted, version), reason


def explain_undecodable(record: msgspec.Raw | bytes, error: BaseException) -> str:
    """Why a bare record that msgspec refused cannot be loaded (the reason of its reject).

    Raises ValueError when the text is not JSON at all: that is broken protocol, never
    a reject. JSON whose strings hold bytes that are not UTF-8 is one bad record (its
    reject keeps U+FFFD in their place). For records whose JSON nobody checked before
    (a batch file's lines go straight to the sink's typed decode), and only once msgspec
    refused one: slow, like `scan_object`.
    """
    data = bytes(record)
    scan = scan_object(data.decode("utf-8", "replace"), any_value=True)
    problem = not_utf8(data)
    if problem is not None:
        return (
            f"the record is not valid UTF-8: {problem} (kept here with U+FFFD in place "
            "of the bytes that are not)"
        )
    return _undecodable_reason(scan, error, record_depth=scan.depth)


def _undecodable_reason(scan: ObjectScan, error: BaseException, record_depth: int) -> str:
    """The reject reason of a record that is JSON but that msgspec cannot decode."""
    if scan.surrogate is not None:
        return (
            f"a string holds a lone UTF-16 surrogate ({scan.surrogate}), which is not a "
            "Unicode character and cannot be stored"
        )
    if scan.non_finite is not None:
        return (
            f"a number is {scan.non_finite}, which JSON does not allow and no warehouse "
            "column can hold"
        )
    if isinstance(error, RecursionError):
        return (
            f"the record is nested {record_depth} levels deep, deeper than the "
            f"decoder allows ({error})"
        )
    return f"the record cannot be decoded: {error}"


class FastSingerReader(GenericSingerReader[bytes]):
    """Reads Singer lines as bytes from stdin (any text or binary file given works too).

    RECORD callbacks receive `(RecordEnvelope, has_nul, input_line)`: whether the line
    holds `\\u0000`, and its line number in the input (1-based).
    """

    #: Called with the exception before any error leaves `process_lines`.
    on_error: Callable[[BaseException], None] | None = None
    #: Called with `(envelope, input_line, reason)` for a RECORD line that is valid JSON
    #: but whose record cannot be decoded; without it such a line stops the run.
    on_bad_record: Callable[[RecordEnvelope, int, str], None] | None = None

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
            except (msgspec.DecodeError, RecursionError) as exc:  # ValidationError included
                salvaged = salvage_record(line, exc) if self.on_bad_record else None
                if salvaged is None:
                    raise InvalidInputLine(
                        f"input line {number} is not a Singer message ({exc}): {_snippet(line)}"
                    ) from None
                self.on_bad_record(salvaged[0], number, salvaged[1])  # type: ignore[misc]
                records += 1
                continue
            except UnicodeDecodeError:  # outside the record, which the sink checks
                raise InvalidInputLine(
                    f"input line {number} is not valid UTF-8: {not_utf8(line)}: {_snippet(line)}"
                ) from None
            kind = envelope.type
            if kind == "RECORD":
                if envelope.stream is None:
                    raise InvalidInputLine(f"input line {number}: RECORD without 'stream'")
                on_record(
                    envelope, (_NUL_BYTES if isinstance(line, bytes) else _NUL_TEXT) in line, number
                )
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
