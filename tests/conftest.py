"""Shared fixtures: the reference data folder (`../shared/data`), skipped when absent."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

# property tests (tests/test_hostile_*.py): no examples database in the repo, no flaky deadline
# on a loaded machine (each test bounds its own examples' time)
settings.register_profile("t2isim", database=None, deadline=None)
settings.load_profile("t2isim")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session", autouse=True)
def _no_ray_address() -> Iterator[None]:
    """The suite starts Ray clusters of its own: a RAY_ADDRESS in the developer's environment
    (inside a Ray job, say) would have the `serve` processes it starts join that cluster."""
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("RAY_ADDRESS", raising=False)
        yield


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
        "test_serve_startup",
        "test_serving_stack",
        "test_serving_startup",
        "test_shared_core_probe",
        "test_speed_drift",
        "test_validation",
        "test_validation_diffusers",
        "test_validation_report",
    }
)


def pytest_itemcollected(item: pytest.Item) -> None:
    """Each item as it is collected, before any `pytest_collection_modifyitems` (xdist's
    reads the group into the node id there)."""
    if item.path.stem in SERIAL_MODULES:
        item.add_marker(pytest.mark.xdist_group("serial"))


def pytest_configure(config: pytest.Config) -> None:
    """Refuse the one known pairing that cannot run the serial modules one at a time: under
    pytest 9.2, pytest-xdist 3.8's `--dist loadgroup` cannot put a test's group in its node
    id (the ids are structured), and the modules that start Ray ran on both workers at once
    and failed now and then. The dev extra pins pytest below 9.2."""
    if hasattr(config, "workerinput") or config.getoption("dist", "no") != "loadgroup":
        return
    import xdist  # installed: `--dist` is its option

    if _release(pytest.__version__)[:2] >= (9, 2) and _release(xdist.__version__)[:2] <= (3, 8):
        raise pytest.UsageError(
            f"pytest {pytest.__version__} with pytest-xdist {xdist.__version__} cannot run the "
            "serial test modules one at a time (--dist loadgroup); install pytest<9.2"
        )


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    """The seed of the run's shuffled order, in its summary even under `-q` (which hides
    pytest-randomly's header): the order of a failure that depends on it is replayed with it
    (how xdist shares the tests between its workers aside)."""
    if config.pluginmanager.hasplugin("randomly"):
        seed = config.getoption("randomly_seed")
        terminalreporter.write_line(
            f"test order: python -m pytest -p randomly --randomly-seed={seed}"
        )


def _release(version: str) -> tuple[int, ...]:
    """The leading numbers of a version string: '9.2.0rc1' -> (9, 2, 0)."""
    numbers = []
    for part in version.split("."):
        digits = "".join(itertools.takewhile(str.isdigit, part))
        if not digits:
            break
        numbers.append(int(digits))
    return tuple(numbers)
