"""Fixtures shared by every test package: in-process sandboxes on loopback."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from ifs_looker_sandboxes.ifs_cloud import IfsCloudSandbox, SandboxConfig

SandboxFactory = Callable[..., IfsCloudSandbox]


@pytest.fixture(scope="session")
def ifs_sandbox() -> Iterator[IfsCloudSandbox]:
    """A well-behaved IFS Cloud sandbox with the default data set, shared by read-only tests."""
    with IfsCloudSandbox(SandboxConfig()) as sandbox:
        yield sandbox


@pytest.fixture
def sandbox_factory() -> Iterator[SandboxFactory]:
    """Start sandboxes with custom settings (faults, token lifetime, mutations); stopped after."""
    started: list[IfsCloudSandbox] = []

    def start(**settings: object) -> IfsCloudSandbox:
        sandbox = IfsCloudSandbox(SandboxConfig(**settings)).start()  # type: ignore[arg-type]
        started.append(sandbox)
        return sandbox

    yield start
    for sandbox in started:
        sandbox.stop()
