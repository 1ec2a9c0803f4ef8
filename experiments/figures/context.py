"""What a figure module gets: the bundle, quick/full mode, cached single runs and sweeps.

A figure module (experiments/figures/figNN_topic.py or tabNN_topic.py, listed in
`experiments.figures.registry.FIGURE_MODULES`) defines::

    NAME = "fig07"                      # the --only name (file name up to "_"), output stem
    TITLE = "Azure trace: ..."          # one line, used in the report
    def compute(ctx: FigureContext) -> pd.DataFrame     # tidy data (written as NAME.csv)
    def plot(data: pd.DataFrame, ax=None) -> Figure     # draws; or `plot = None` (see below)
    def claims(data: pd.DataFrame) -> list[Claim]       # the paper's claims it checks ([] if none)

`compute` must be deterministic for a given context; quick mode shortens traces and grids so
every figure together stays within about two minutes on two cores.

`plot` is a display function: it draws `data` (NAME.csv as read back is enough) into `ax` and
returns the matplotlib Figure without saving or closing it. With `ax=None` it makes a new
figure in the paper style; a single-panel figure also takes one Axes, a multi-panel one a
sequence (or array) of exactly its number of axes, row-major, of one figure (anything else: a
ValueError saying how many it needs; `style.figure_axes` does both). `report.make_figures`
saves the figure atomically as NAME.png (`style.save`) and closes it; notebooks show it. A
table with no figure of its own sets `plot = None`: the report then writes NAME.csv only and
links it, and the notebooks show the data frame.

Optional: `PRESET = "artifact-testbed"` (the modelling preset the figure runs, named in the
report; `default` when absent) and `def report_lines(data) -> list[str]` (Markdown the report
puts under the figure's heading, from NAME.csv as read back: a table's rows, say).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from experiments.figures.verdicts import VERDICTS
from simulator.bundle import Bundle
from simulator.config import SimConfig
from simulator.run import RunOutput, run_simulation
from simulator.workloads import Trace


@dataclass(frozen=True)
class Claim:
    """One headline claim of a paper next to our number; `verdict` is one of VERDICTS, decided
    by the rules of `verdicts`."""

    figure: str
    claim: str
    paper: str
    ours: str
    verdict: str
    note: str = ""

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")


@dataclass
class FigureContext:
    bundle_spec: str  # 'default' or the bundle folder, as given on the command line
    bundle: Bundle
    out_dir: Path
    quick: bool = False
    seed: int = 0
    jobs: int | None = 1  # sweep workers (1 = inline)
    dask: str | None = None
    base: SimConfig = field(default_factory=SimConfig)  # 16 workers, 60 s SLO as HADIS §5.1
    _runs: dict = field(default_factory=dict, repr=False)
    _traces: dict = field(default_factory=dict, repr=False)

    def trace(self, spec: str) -> Trace:
        """A trace from a spec string (cached), seeded with the context's seed."""
        if spec not in self._traces:
            from experiments.inputs import resolve_trace

            self._traces[spec] = resolve_trace(spec, self.bundle, self.seed)
        return self._traces[spec]

    def run(
        self,
        policy: str,
        trace_spec: str,
        options: Mapping[str, object] | None = None,
        **sim: object,
    ) -> RunOutput:
        """One simulation (cached per arguments) on the base config with `sim` overrides."""
        key = (
            policy,
            trace_spec,
            tuple(sorted((options or {}).items())),
            tuple(sorted(sim.items())),
        )
        if key not in self._runs:
            import policies  # noqa: F401  (registers the adaptive policies)

            config = replace(self.base, seed=self.seed, **sim)
            self._runs[key] = run_simulation(
                self.bundle,
                self.trace(trace_spec),
                policy,
                config,
                dict(options or {}),
                bundle_hash=self.bundle_hash,
            )
        return self._runs[key]

    @property
    def bundle_hash(self) -> str:
        if "_bundle_hash" not in self.__dict__:
            self.__dict__["_bundle_hash"] = self.bundle.content_hash()
        return self.__dict__["_bundle_hash"]

    def sweep_sim(self) -> dict[str, object]:
        """The base SimConfig as a sweep spec's `sim`: the fields that differ from the
        defaults, plus slo_s (the base of SLO multipliers) and the context's seed."""
        defaults = SimConfig().to_dict()
        sim = {k: v for k, v in self.base.to_dict().items() if v != defaults[k]}
        sim.update(slo_s=self.base.slo_s, seed=self.seed)
        return sim

    def sweep(
        self, name: str, spec: Mapping[str, object] | Sequence[Mapping[str, object]]
    ) -> pd.DataFrame:
        """Run a sweep spec (the YAML schema of experiments/sweep.py, as a dict; `bundle` is
        this context's), or several (one backend), into the store `out_dir/sweeps/<name>`
        (resumable) and return the rows of exactly these runs."""
        from experiments.sweep import open_backend, parse_spec, plan_runs, read_store, run_sweep

        specs = [spec] if isinstance(spec, Mapping) else list(spec)
        runs = [
            run
            for one in specs
            for run in plan_runs(
                parse_spec({"bundle": self.bundle_spec, **one}, f"figure sweep {name}"),
                self.bundle,
                self.bundle_hash,
            )
        ]
        store = self.out_dir / "sweeps" / name
        with open_backend(self.bundle, jobs=self.jobs, dask=self.dask) as backend:
            run_sweep(runs, store, backend)
        return read_store(store, keys=[run.key for run in runs])
