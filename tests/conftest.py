"""Fixtures shared by every test package: in-process sandboxes (made by tests/sandboxes.py)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import pytest

from ifs_looker_sandboxes.ifs_cloud import IfsCloudSandbox
from ifs_looker_sandboxes.looker import LookerConfig, LookerSandbox
from tests.sandboxes import running_ifs_cloud, running_looker

SandboxFactory = Callable[..., IfsCloudSandbox]


@pytest.fixture(scope="session")
def ifs_sandbox() -> Iterator[IfsCloudSandbox]:
    """A well-behaved IFS Cloud sandbox with the default data set, shared by read-only tests."""
    with running_ifs_cloud() as sandbox:
        yield sandbox


@pytest.fixture
def sandbox_factory() -> Iterator[SandboxFactory]:
    """Start sandboxes with custom settings (faults, token lifetime, mutations, `time_source`).

    Each call takes the keyword arguments of `tests.sandboxes.running_ifs_cloud`; every
    sandbox started is stopped after the test.
    """
    with contextlib.ExitStack() as stack:

        def start(**settings: object) -> IfsCloudSandbox:
            return stack.enter_context(running_ifs_cloud(**settings))  # type: ignore[arg-type]

        yield start


@pytest.fixture
def looker_sandbox(tmp_path) -> Iterator[LookerSandbox]:
    """A well-behaved Looker sandbox whose `local` connection is a DuckDB file of this test.

    On teardown every request and every response must have matched the spec subset.
    """
    config = LookerConfig(connections={"local": f"duckdb:///{tmp_path / 'looker-local.duckdb'}"})
    with running_looker(config) as sandbox:
        yield sandbox
