"""Contract test: the private singer-sdk names the tap relies on, against the installed SDK.

`tap_ifscloud/sdk_adapter.py` is the only tap module that uses private SDK names and
lists them in `PRIVATE_SDK_NAMES`. Each must still exist with the parameters the
adapter calls or overrides it with, and the SDK must still call the overridden hooks
where the adapter expects; after an SDK upgrade this test fails, not a production run.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest
import singer_sdk

import tap_ifscloud
from tap_ifscloud.sdk_adapter import PRIVATE_SDK_NAMES, PagedStream
from tap_ifscloud.tap import TapIFSCloud
from tests.test_architecture import sdk_private_names

# name -> parameter names (in order; "*name" is keyword-only), or None for an instance attribute
EXPECTED_PARAMETERS: dict[str, tuple[str, ...] | None] = {
    "singer_sdk.Stream._increment_stream_state": ("self", "latest_record", "*context"),
    "singer_sdk.Stream._write_state_message": ("self",),
    "singer_sdk.Stream._generate_record_messages": ("self", "record"),
    "singer_sdk.Stream._stream_version": None,
    "singer_sdk.Stream._sync_records": ("self", "context", "*write_messages"),
    "singer_sdk.Stream._get_state_partition_context": ("self", "context"),
    "singer_sdk.Stream._write_starting_replication_value": ("self", "context"),
    "singer_sdk.Stream._finalize_state": ("self", "state"),
    "singer_sdk.Stream._generate_batch_messages": ("self", "encoding", "manifest"),
}

# where the SDK uses each name as the adapter expects (source of the SDK's own methods)
EXPECTED_USES: dict[str, list[tuple[str, str]]] = {
    "singer_sdk.Stream._increment_stream_state": [
        ("_sync_records", "self._increment_stream_state(record, context=current_context)"),
    ],
    "singer_sdk.Stream._write_state_message": [("_sync_batches", "self._write_state_message()")],
    "singer_sdk.Stream._generate_record_messages": [
        ("_write_record_message", "self._generate_record_messages(record)"),
    ],
    "singer_sdk.Stream._stream_version": [
        ("sync", "self._stream_version = self._initialized_at // 1000"),
        ("__init__", "self._stream_version: int | None = None"),
    ],
    "singer_sdk.Stream._sync_records": [
        ("sync", "for _ in self._sync_records(context=context):"),
        ("get_batches", "self._sync_records(context, write_messages=False)"),
    ],
    "singer_sdk.Stream._get_state_partition_context": [
        ("_sync_records", "state_partition_context = self._get_state_partition_context("),
    ],
    "singer_sdk.Stream._write_starting_replication_value": [
        ("_sync_records", "self._write_starting_replication_value(current_context)"),
    ],
    "singer_sdk.Stream._finalize_state": [
        ("_sync_records", "self._finalize_state(state)"),
        ("_sync_records", "self._finalize_state(self.stream_state)"),
    ],
    "singer_sdk.Stream._generate_batch_messages": [
        ("_write_batch_message", "self._generate_batch_messages(encoding, manifest)"),
    ],
}

# `PagedStream._sync_records` runs the SDK's `Stream._sync_records` a page at a time (the
# record fast path): it repeats the SDK's per-partition and closing steps and does per page
# what the SDK does per record. This is the SDK's method it was written against; when an
# SDK upgrade changes it, compare the two and update the fast path, then this digest.
SYNC_RECORDS_SHA256 = "8928dc7f50e9bf57cc98734b30e3953b0e19007f85fe020a0c80ccdbcf5d329f"

OFFLINE_CONFIG = {
    "base_url": "https://ifs.invalid",
    "realm": "r",
    "client_id": "c",
    "client_secret": "s",
    "companies": ["US01"],
    "offline_discovery": True,
}


def owner_and_attribute(dotted: str) -> tuple[type, str]:
    module_name, owner_name, attribute = dotted.rsplit(".", 2)
    return getattr(importlib.import_module(module_name), owner_name), attribute


def test_every_private_name_has_an_expected_signature_and_use():
    assert set(PRIVATE_SDK_NAMES) == set(EXPECTED_PARAMETERS) == set(EXPECTED_USES)


@pytest.mark.parametrize("dotted", PRIVATE_SDK_NAMES)
def test_private_name_exists_with_the_parameters_the_adapter_uses(dotted):
    owner, attribute = owner_and_attribute(dotted)
    expected = EXPECTED_PARAMETERS[dotted]
    if expected is None:
        stream = TapIFSCloud(config=OFFLINE_CONFIG, validate_config=False).streams["gl_accounts"]
        assert attribute in vars(stream), f"singer-sdk no longer sets {dotted}"
        return
    member = inspect.getattr_static(owner, attribute, None)
    assert member is not None, f"singer-sdk no longer has {dotted}"
    parameters = inspect.signature(member).parameters.values()
    keyword_only = inspect.Parameter.KEYWORD_ONLY
    found = tuple(f"*{p.name}" if p.kind is keyword_only else p.name for p in parameters)
    assert found == expected, f"{dotted} changed its parameters"


@pytest.mark.parametrize("dotted", PRIVATE_SDK_NAMES)
def test_the_sdk_still_uses_the_name_where_the_adapter_expects(dotted):
    owner, _ = owner_and_attribute(dotted)
    for method, statement in EXPECTED_USES[dotted]:
        source = inspect.getsource(getattr(owner, method))
        assert statement in source, f"singer-sdk's {method} no longer runs `{statement}`"


def test_the_sdk_record_loop_is_the_one_the_page_loop_mirrors():
    source = inspect.getsource(singer_sdk.Stream._sync_records)
    digest = hashlib.sha256(source.encode()).hexdigest()
    assert digest == SYNC_RECORDS_SHA256, (
        "singer-sdk's Stream._sync_records changed: check that PagedStream._sync_records "
        "(tap_ifscloud/sdk_adapter.py) still does what it does, then update the digest"
    )


def tap_modules() -> list[str]:
    return [
        f"tap_ifscloud.{info.name}"
        for info in pkgutil.iter_modules(tap_ifscloud.__path__)
        if info.name != "sdk_adapter"
    ]


@pytest.mark.parametrize("module_name", tap_modules())
def test_no_other_tap_module_uses_a_private_sdk_name(module_name):
    """Also in classes that reach the SDK through the adapter (which the architecture
    test, looking for SDK base classes by name, does not see)."""
    module = importlib.import_module(module_name)
    tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
    private = sdk_private_names()
    found = []
    for node in ast.walk(tree):
        module_path = (node.module or "") if isinstance(node, ast.ImportFrom) else ""
        if module_path.startswith("singer_sdk") and any(
            part.startswith("_") for part in module_path.split(".")
        ):
            found.append(f"import from {module_path}")
        if isinstance(node, ast.ClassDef):
            cls = getattr(module, node.name, None)
            if not (isinstance(cls, type) and issubclass(cls, singer_sdk.Stream | singer_sdk.Tap)):
                continue
            for inner in ast.walk(node):
                if isinstance(inner, ast.FunctionDef) and inner.name in private:
                    found.append(f"{node.name} defines {inner.name}")
                elif isinstance(inner, ast.Attribute) and inner.attr in private:
                    found.append(f"{node.name} uses .{inner.attr}")
        elif isinstance(node, ast.Attribute) and node.attr in private:
            owner = ast.unparse(node.value)
            if owner in ("stream", "tap", "self.plugin"):
                found.append(f"uses {owner}.{node.attr}")
    assert found == []


def test_the_stream_classes_reach_the_sdk_through_the_adapter():
    from tap_ifscloud.client import IFSStream

    assert issubclass(IFSStream, PagedStream)
