"""Shared fixtures: the reference data folder (`../shared/data`), skipped when absent."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"reference data not present at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def hadis_artifact(shared_data: Path) -> Path:
    path = shared_data / "hadis-artifact"
    if not path.is_dir():
        pytest.skip(f"HADIS artifact data not present at {path}")
    return path
