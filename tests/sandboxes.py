"""The one place tests make sandboxes: IFS Cloud and Looker, in-process on loopback.

Fixtures (tests/conftest.py, the package conftests) and tests that need a sandbox
with settings of their own use these helpers instead of constructing sandboxes.
Settings are the sandbox config's fields by name; `time_source` is the sandbox's
clock (pass a `ManualClock` and advance it instead of sleeping).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ifs_looker_sandboxes.clock import TimeSource
from ifs_looker_sandboxes.ifs_cloud import IfsCloudSandbox, SandboxConfig
from ifs_looker_sandboxes.looker import LookerConfig, LookerSandbox


def ifs_cloud_sandbox(
    config: SandboxConfig | None = None,
    *,
    time_source: TimeSource | None = None,
    **settings: Any,
) -> IfsCloudSandbox:
    """An IFS Cloud sandbox with its data generated, not serving yet; `settings` amend `config`."""
    config = dataclasses.replace(config or SandboxConfig(), **settings)
    return IfsCloudSandbox(config, time_source=time_source)


@contextlib.contextmanager
def running_ifs_cloud(
    config: SandboxConfig | None = None,
    *,
    time_source: TimeSource | None = None,
    **settings: Any,
) -> Iterator[IfsCloudSandbox]:
    """An IFS Cloud sandbox serving on a free loopback port for the `with` block."""
    with ifs_cloud_sandbox(config, time_source=time_source, **settings) as sandbox:
        yield sandbox


@contextlib.contextmanager
def running_looker(
    config: LookerConfig | None = None,
    *,
    time_source: TimeSource | None = None,
    lookml_dirs: dict[str, str | Path] | None = None,
    check_requests: bool = True,
    check_responses: bool = True,
    **settings: Any,
) -> Iterator[LookerSandbox]:
    """A Looker sandbox serving on a free loopback port for the `with` block.

    When the block ends normally, every request (`check_requests`) and every
    response (`check_responses`) must have matched the Looker API spec subset.
    """
    config = dataclasses.replace(config or LookerConfig(), **settings)
    with LookerSandbox(config, lookml_dirs=lookml_dirs, time_source=time_source) as sandbox:
        yield sandbox
    if check_requests:
        assert sandbox.request_problems() == [], "every request must match the spec subset"
    if check_responses:
        assert sandbox.response_problems == [], "every response must match the spec subset"
