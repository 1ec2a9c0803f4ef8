"""Shared fixtures: the reference data folder (`../shared/data`), skipped when absent."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import settings

# property tests (tests/test_hostile_*.py): no examples database in the repo, no flaky deadline
# on a loaded machine (each test bounds its own examples' time)
settings.register_profile("t2isim", database=None, deadline=None)
settings.load_profile("t2isim")

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


# Test modules that start a Ray cluster or time a CPU: run one at a time, on one xdist worker
# (`--dist loadgroup`), so that no two clusters or timed loops share the cores at once.
SERIAL_MODULES = frozenset(
    {
        "test_cpu_probes",
        "test_profiler_neighbour",
        "test_serving_diffusers",
        "test_serving_join",
        "test_serving_ray",
        "test_serve_overhead",
        "test_serving_stack",
        "test_serving_startup",
        "test_shared_core_probe",
        "test_speed_drift",
        "test_validation",
        "test_validation_diffusers",
        "test_validation_report",
    }
)


@pytest.hookimpl(tryfirst=True)  # before xdist's, which reads the group into each node id
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.stem in SERIAL_MODULES:
            item.add_marker(pytest.mark.xdist_group("serial"))
