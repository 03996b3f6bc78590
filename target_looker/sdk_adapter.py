"""The one module of target_looker that uses singer-sdk's private names.

singer-sdk 0.54 gives a target no public way to handle messages itself: `Target`
dispatches each input line to a `_process_*_message` method, keeps its sinks in
`_sinks_active` and `_sinks_to_clear`, and handles SIGTERM/SIGINT in
`_handle_termination`. Its own handlers turn every record into a dict, validate it
with jsonschema and emit STATE on a five-minute timer, none of which this target can
afford (SPEC section 12).

`SingerTargetAdapter` overrides those hooks here, once, and hands each message to a
public method that the subclass implements; the sink registry is offered through
public methods too. Every private name used is listed in `PRIVATE_SDK_NAMES` and
checked against the installed SDK (existence and signature) by
tests/target_looker/test_sdk_adapter.py, so an SDK upgrade fails a test, not a
production run. No other module of target_looker uses a private SDK name (the same
test checks).
"""

from __future__ import annotations

import abc
import typing as t

from singer_sdk.sinks import Sink
from singer_sdk.target_base import Target

if t.TYPE_CHECKING:
    from collections.abc import Callable
    from types import FrameType

SinkT = t.TypeVar("SinkT", bound=Sink)

#: The private singer-sdk names this module relies on, as `singer_sdk.<Class>.<name>`.
PRIVATE_SDK_NAMES: tuple[str, ...] = (
    "singer_sdk.Target._process_schema_message",
    "singer_sdk.Target._process_record_message",
    "singer_sdk.Target._process_state_message",
    "singer_sdk.Target._process_activate_version_message",
    "singer_sdk.Target._process_batch_message",
    "singer_sdk.Target._handle_termination",
    "singer_sdk.Target._sinks_active",
    "singer_sdk.Target._sinks_to_clear",
)

#: What each name must be in the installed SDK: a method's parameter names, or the type
#: of an instance attribute that the class's `__init__` sets.
PRIVATE_SDK_CONTRACT: dict[str, tuple[str, ...] | type] = {
    "singer_sdk.Target._process_schema_message": ("self", "message_dict"),
    "singer_sdk.Target._process_record_message": ("self", "message_dict"),
    "singer_sdk.Target._process_state_message": ("self", "message_dict"),
    "singer_sdk.Target._process_activate_version_message": ("self", "message_dict"),
    "singer_sdk.Target._process_batch_message": ("self", "message_dict"),
    "singer_sdk.Target._handle_termination": ("self", "signum", "frame"),
    "singer_sdk.Target._sinks_active": dict,  # stream name -> current sink
    "singer_sdk.Target._sinks_to_clear": list,  # sinks retired by a changed SCHEMA, not drained
}


class SingerTargetAdapter(Target, t.Generic[SinkT]):
    """A singer-sdk `Target` whose message, sink and signal hooks are public methods."""

    def __init__(self, **kwargs: t.Any) -> None:
        super().__init__(**kwargs)
        # The SDK's own drain paths are not used; should one ever run, it must not drain
        # sinks in parallel: one loader thread owns the warehouse connection.
        self.max_parallelism = 1

    # What the subclass implements ----------------------------------------------------------

    @abc.abstractmethod
    def process_schema(self, message: dict) -> None:
        """A SCHEMA message (call `register_schema` for the SDK's handling)."""

    @abc.abstractmethod
    def process_record(self, *args: t.Any) -> None:
        """A RECORD, with whatever arguments the message reader passes for one."""

    @abc.abstractmethod
    def process_state(self, message: dict) -> None:
        """A STATE message."""

    @abc.abstractmethod
    def process_activate_version(self, message: dict) -> None:
        """An ACTIVATE_VERSION message."""

    @abc.abstractmethod
    def process_batch_manifest(self, message: dict) -> None:
        """A BATCH message (files written by the tap)."""

    @abc.abstractmethod
    def on_termination(self, signum: int) -> None:
        """SIGTERM or SIGINT arrived (runs in the main thread, between bytecodes)."""

    # The SDK's hooks --------------------------------------------------------------------------

    def _process_schema_message(self, message_dict: dict) -> None:
        self.process_schema(message_dict)

    @property
    def _process_record_message(self) -> Callable[..., None]:  # type: ignore[override]
        """The RECORD hook is `process_record` itself rather than a method calling it.

        The SDK looks its hooks up once per `listen` (building the reader's callback
        table), so this costs nothing per record, where a delegating method would add a
        Python call to the hot path.
        """
        return self.process_record

    def _process_state_message(self, message_dict: dict) -> None:
        self.process_state(message_dict)

    def _process_activate_version_message(self, message_dict: dict) -> None:
        self.process_activate_version(message_dict)

    def _process_batch_message(self, message_dict: dict) -> None:
        self.process_batch_manifest(message_dict)

    def _handle_termination(self, signum: int, frame: FrameType | None) -> None:
        self.on_termination(signum)

    # The SDK's behaviour, under public names ---------------------------------------------

    def register_schema(self, message: dict) -> None:
        """The SDK's SCHEMA handling: register the stream maps, then one sink per mapped
        stream. A changed schema or key retires the stream's sink (see `all_sinks`)."""
        super()._process_schema_message(message)

    def active_sink(self, stream_name: str) -> SinkT | None:
        """The current sink of a (mapped) stream, or None before its SCHEMA."""
        return t.cast("SinkT | None", self._sinks_active.get(stream_name))

    def all_sinks(self) -> list[SinkT]:
        """Every sink that may hold records: retired ones first, then the current ones."""
        return t.cast("list[SinkT]", [*self._sinks_to_clear, *self._sinks_active.values()])

    def release_retired_sinks(self) -> None:
        """Clean up and forget the retired sinks that hold no records any more.

        `clean_up` logs the sink's final record count (SDK metrics).
        """
        keep = []
        for sink in self._sinks_to_clear:
            if sink.current_size:
                keep.append(sink)
            else:
                sink.clean_up()
        self._sinks_to_clear[:] = keep


__all__ = ["PRIVATE_SDK_CONTRACT", "PRIVATE_SDK_NAMES", "SingerTargetAdapter"]
