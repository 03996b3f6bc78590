"""The seam to singer-sdk's private names: checked against the installed SDK.

An SDK upgrade that renames or reshapes a private hook the target relies on fails
here, not in a production run; and no module of target_looker other than
sdk_adapter.py may use a private SDK name.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import io
import json
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from singer_sdk.singerlib.encoding.base import GenericSingerReader
from singer_sdk.sinks import BatchSink
from singer_sdk.target_base import Target

import target_looker
from target_looker.reader import FastSingerReader, RecordEnvelope
from target_looker.sdk_adapter import PRIVATE_SDK_CONTRACT, PRIVATE_SDK_NAMES, SingerTargetAdapter

PACKAGE = Path(target_looker.__file__).parent
ADAPTER = PACKAGE / "sdk_adapter.py"


# The contract ---------------------------------------------------------------------------


def test_every_private_name_has_a_contract() -> None:
    assert len(set(PRIVATE_SDK_NAMES)) == len(PRIVATE_SDK_NAMES)
    assert set(PRIVATE_SDK_CONTRACT) == set(PRIVATE_SDK_NAMES)


@pytest.mark.parametrize("qualified", PRIVATE_SDK_NAMES)
def test_the_private_name_exists_in_the_installed_sdk(
    qualified: str, target: RecordingTarget
) -> None:
    module, owner_name, name = qualified.split(".")
    owner = getattr(importlib.import_module(module), owner_name)
    assert isinstance(target, owner)
    expected = PRIVATE_SDK_CONTRACT[qualified]
    if isinstance(expected, tuple):  # a method: same parameter names
        member = inspect.getattr_static(owner, name)
        assert inspect.isfunction(member), f"{qualified} is no longer a method"
        assert tuple(inspect.signature(member).parameters) == expected
    else:  # an instance attribute that the owner's __init__ sets
        value = vars(target)[name]
        assert isinstance(value, expected), f"{qualified} is a {type(value).__name__}"


# The hooks reach the public methods -------------------------------------------------------


class RecordingSink(BatchSink):
    cleaned: list[RecordingSink] = []

    def process_batch(self, context: dict) -> None:
        pass

    def clean_up(self) -> None:
        super().clean_up()
        self.cleaned.append(self)


class RecordingTarget(SingerTargetAdapter[RecordingSink]):
    """The adapter with public methods that only record what reaches them."""

    name = "target-recording"
    config_jsonschema: dict = {"type": "object", "properties": {}}
    default_sink_class = RecordingSink
    message_reader_class = FastSingerReader

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.calls: list[tuple[str, object]] = []

    def process_schema(self, message: dict) -> None:
        self.calls.append(("schema", message["stream"]))
        self.register_schema(message)

    def process_record(self, envelope: RecordEnvelope, has_nul: bool, line: int) -> None:
        self.calls.append(("record", (envelope.stream, bytes(envelope.record), has_nul, line)))

    def process_state(self, message: dict) -> None:
        self.calls.append(("state", message["value"]))

    def process_activate_version(self, message: dict) -> None:
        self.calls.append(("activate_version", message["version"]))

    def process_batch_manifest(self, message: dict) -> None:
        self.calls.append(("batch", message["stream"]))

    def on_termination(self, signum: int) -> None:
        self.calls.append(("signal", signum))

    def process_endofpipe(self) -> None:
        pass  # the SDK's would drain and clean up every sink


@pytest.fixture
def target() -> Iterator[RecordingTarget]:
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    RecordingSink.cleaned = []
    try:
        yield RecordingTarget(config={})
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


def schema(stream: str, properties: dict) -> dict:
    return {
        "type": "SCHEMA",
        "stream": stream,
        "schema": {"type": "object", "properties": properties},
        "key_properties": ["id"],
    }


def feed(target: RecordingTarget, *messages: dict) -> None:
    target.listen(io.StringIO("".join(json.dumps(m) + "\n" for m in messages)))


def test_each_message_type_reaches_its_public_method(target: RecordingTarget) -> None:
    feed(
        target,
        schema("a", {"id": {"type": "integer"}}),
        {"type": "RECORD", "stream": "a", "record": {"id": 1}},
        {"type": "RECORD", "stream": "a", "record": {"id": "\u0000"}},
        {"type": "STATE", "value": {"n": 1}},
        {"type": "ACTIVATE_VERSION", "stream": "a", "version": 7},
        {"type": "BATCH", "stream": "a", "encoding": {"format": "jsonl"}, "manifest": []},
    )
    assert target.calls == [
        ("schema", "a"),
        ("record", ("a", b'{"id": 1}', False, 2)),
        ("record", ("a", b'{"id": "\\u0000"}', True, 3)),
        ("state", {"n": 1}),
        ("activate_version", 7),
        ("batch", "a"),
    ]


def test_the_record_hook_is_the_public_method_itself(target: RecordingTarget) -> None:
    """No wrapper between the reader and `process_record`: the hot path gains no call."""
    [record_hook] = [n.rsplit(".", 1)[1] for n in PRIVATE_SDK_NAMES if "record_message" in n]
    assert getattr(target, record_hook) == target.process_record


def test_a_changed_schema_retires_the_sink_until_it_is_released(target: RecordingTarget) -> None:
    feed(target, schema("a", {"id": {"type": "integer"}}))
    first = target.active_sink("a")
    assert isinstance(first, RecordingSink)
    assert target.active_sink("b") is None
    feed(target, schema("a", {"id": {"type": "integer"}, "x": {"type": "string"}}))
    second = target.active_sink("a")
    assert second is not first
    assert target.all_sinks() == [first, second]  # retired ones first
    target.release_retired_sinks()
    assert target.all_sinks() == [second]
    assert RecordingSink.cleaned == [first]


def test_termination_signals_reach_on_termination(target: RecordingTarget) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        handler = signal.getsignal(sig)
        assert callable(handler)
        handler(sig, None)
    assert target.calls == [("signal", signal.SIGTERM), ("signal", signal.SIGINT)]


# Nowhere else ---------------------------------------------------------------------------


def declared_names() -> set[str]:
    return {qualified.rsplit(".", 1)[1] for qualified in PRIVATE_SDK_NAMES}


def sdk_private_names() -> set[str]:
    """Private members of the SDK classes the target builds on, as far as can be seen."""
    names: set[str] = set()
    for cls in (Target, BatchSink, GenericSingerReader):
        for klass in cls.__mro__:
            if not klass.__module__.startswith("singer_sdk"):
                continue
            names.update(n for n in vars(klass) if n.startswith("_"))
            names.update(re.findall(r"self\.(_\w+)", inspect.getsource(klass)))
    names.update(declared_names())
    return {n for n in names if not (n.startswith("__") and n.endswith("__"))} - {"_abc_impl"}


def private_sdk_uses(path: Path, names: set[str]) -> set[str]:
    """SDK private names that `path` uses: as attributes, defines, or imports."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Attribute) and node.attr in names:
            found.add(node.attr)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name in names:
            found.add(node.name)
        elif isinstance(node, ast.Constant) and node.value in names:
            found.add(node.value)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("singer_sdk"):
            parts = node.module.split(".") + [alias.name for alias in node.names]  # type: ignore[union-attr]
            found.update(f"{node.module}:{p}" for p in parts if p.startswith("_"))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("singer_sdk"):
                    found.update(p for p in alias.name.split(".") if p.startswith("_"))
    return found


def test_no_other_module_uses_a_private_sdk_name() -> None:
    names = sdk_private_names()
    offenders = {
        str(path.relative_to(PACKAGE)): sorted(uses)
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != ADAPTER and (uses := private_sdk_uses(path, names))
    }
    assert offenders == {}


def test_the_adapter_lists_every_private_sdk_name_it_uses() -> None:
    uses = private_sdk_uses(ADAPTER, sdk_private_names())
    assert uses == declared_names()
