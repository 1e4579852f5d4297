"""Fixtures of the runner's tests that start real device workers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pytest_goblin.runner import measured


@pytest.fixture(scope="module")
def private_locks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Device locks of their own, so that other pytest runs on this machine do not wait."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(measured, "LOCK_DIR", tmp_path_factory.mktemp("locks"))
        yield
