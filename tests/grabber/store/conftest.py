"""A host directory in a temporary repository, for the store's tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from pullsnap.grabber.store.repository import HostRepo
from tests.grabber.store.test_repository import HOST


@pytest.fixture
def repo(tmp_path: Path) -> HostRepo:
    r = HostRepo(str(tmp_path / "repo"), HOST)
    r.ensure()
    return r
