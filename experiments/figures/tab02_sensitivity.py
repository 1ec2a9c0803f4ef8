"""Sensitivity of the headline metrics to the modelling choices (not a paper figure).

For each modelling choice that the paper, the HADIS artifact and this project settle
differently (`simulator/presets.py`, docs/PRESETS.md), HADIS's and Proteus's FID and SLO
violation ratio on the Azure trace of Fig. 7 under each alternative, every other choice at the
`default` preset; then one row per preset (`paper`, `artifact`, `default`), every choice at that
preset's value. The alternatives are read from where each knob is declared, so a value added
there (a demand estimator, a `spare` or `planner` choice) gets its row:

* demand estimator: `SimConfig.demand_estimator` (`simulator.config.DEMAND_ESTIMATORS`);
* spare workers: HADIS `--option spare` (`policies.planning.PLANNER_OPTIONS`; `keep`, the
  artifact's placement, runs with the planner it requires, `planner=faithful`: `SPARE_NEEDS`);
* MILP planner: HADIS `--option planner` (the default MILP, the artifact's port, ...);
* swap-aware planning: HADIS `--option swap_aware` (unset: on with the default planner, off
  with the artifact's; `policies.planning.SwapRule`);
* the swap rule's rate: HADIS `--option swap_fid_s_per_gpu_s` (FID-seconds of forgone quality
  worth a GPU-second of loading; its default `policies.planning.SWAP_FID_S_PER_GPU_S` is a
  choice, not a measurement), and `SWAP_RATES`: a quarter and four times it;
* swap cost: `SimConfig.load_s` (the bundle's load time per model, none, `SWAP_LOAD_S`);
* queued queries on a plan change: `SimConfig.on_plan_change` (`simulator.config.
  PLAN_CHANGE_MODES`: routed again, or kept for the worker's new model);
* re-route order: `SimConfig.reroute_order` (`simulator.config.REROUTE_ORDERS`: the serving
  path's order, or by arrival);
* Proteus routing: Proteus `--option routing` (`policies.proteus.PROTEUS_OPTIONS`).

Each (alternative, method) runs on the replicates of `seeds.seed_rows` (quick mode: the first
`QUICK_SEEDS`): trace seed i on the default bundle's replicate i (latent draw and calibration
draw; the trace seed only on other bundles), through the figures' sweep store (`seeds.STORE`,
shared with Fig. 7: the default rows are Fig. 7's runs). Data: one row per (choice,
alternative) with the setting, whether it is the default preset's, per method and metric the
seed mean and its 95% CI half-width
(``hadis_fid``, ``hadis_fid_ci95``, ...), and the paired HADIS − Proteus difference over seeds
with its half-width (``fid_gap``, ``slo_violation_ratio_gap``): a conclusion hinges on a choice
when the gap's sign changes between its alternatives.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from experiments.figures import seeds, style
from experiments.figures.context import Claim, FigureContext
from experiments.figures.fig07_azure import AZURE_TRACE
from policies.planning import SWAP_FID_S_PER_GPU_S
from simulator.config import DEMAND_ESTIMATORS, PLAN_CHANGE_MODES, REROUTE_ORDERS, SimConfig
from simulator.presets import MODELLING_PRESETS, get_preset

if TYPE_CHECKING:
    from matplotlib.figure import Figure

NAME = "tab02"
TITLE = "Sensitivity of HADIS's and Proteus's FID and SLO violations to the modelling choices"
PRESET = "default"  # every row but the one it changes is at this preset
TRACE = AZURE_TRACE  # Fig. 7's trace
METHODS = ("hadis", "proteus")
KEYS = ("fid", "slo_violation_ratio")
SWAP_LOAD_S = (None, 0.0, 10.0)  # None: the bundle's load time per model
SWAP_RATES = (SWAP_FID_S_PER_GPU_S, 0.25 * SWAP_FID_S_PER_GPU_S, 4.0 * SWAP_FID_S_PER_GPU_S)
SPARE_NEEDS = {"keep": {"planner": "faithful"}}  # HADIS options a spare value is refused without
PRESET_CHOICE = "preset"
QUICK_SEEDS = 2  # quick mode: the first two of `seeds.seeds_of` (about 40 runs of ~1 s)
COLUMNS = [
    "choice",
    "alternative",
    "setting",
    "default",
    "n_seeds",
    *(f"{m}_{k}{s}" for m in METHODS for k in KEYS for s in ("", "_ci95")),
    *(f"{k}_gap{s}" for k in KEYS for s in ("", "_ci95")),
]


@dataclass(frozen=True)
class Alternative:
    """One value of a modelling choice: SimConfig fields for every method and options per
    method (values equal to the declared defaults left out, so equal settings share runs)."""

    choice: str
    value: str
    sim: Mapping[str, object] = field(default_factory=dict)
    options: Mapping[str, Mapping[str, object]] = field(default_factory=dict)

    @property
    def setting(self) -> str:
        """The knobs this alternative sets away from the defaults ('defaults' if none):
        'field=value, ...; method: option=value, ...'."""
        groups = [", ".join(f"{k}={_text(v)}" for k, v in self.sim.items())]
        groups += [
            f"{m}: " + ", ".join(f"{k}={_text(v)}" for k, v in opts.items())
            for m, opts in self.options.items()
        ]
        return "; ".join(g for g in groups if g) or "defaults"


def _text(value: object) -> str:
    return "bundle" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def declared_options() -> dict[str, Mapping[str, object]]:
    """The declared options of each method (`simulator.options.Option` by key)."""
    from policies.planning import HADIS_OPTIONS
    from policies.proteus import PROTEUS_OPTIONS

    return {"hadis": HADIS_OPTIONS, "proteus": PROTEUS_OPTIONS}


def alternative(
    choice: str,
    value: str,
    sim: Mapping[str, object] | None = None,
    options: Mapping[str, Mapping[str, object]] | None = None,
) -> Alternative:
    """An Alternative without the values that equal the defaults (SimConfig's, the options')."""
    defaults = SimConfig().to_dict()
    declared = declared_options()
    sim = {k: v for k, v in (sim or {}).items() if v != defaults[k]}
    options = {
        m: {k: v for k, v in opts.items() if v != declared[m][k].default}
        for m, opts in (options or {}).items()
    }
    return Alternative(choice, value, sim, {m: o for m, o in options.items() if o})


def choice_alternatives() -> list[Alternative]:
    """Every alternative of every modelling choice, the others at their defaults."""
    declared = declared_options()
    hadis, proteus = declared["hadis"], declared["proteus"]
    return [
        *(alternative("demand estimator", e, {"demand_estimator": e}) for e in DEMAND_ESTIMATORS),
        *(
            alternative(
                "spare workers", s, options={"hadis": {"spare": s, **SPARE_NEEDS.get(s, {})}}
            )
            for s in hadis["spare"].choices
        ),
        *(
            alternative("MILP planner", p, options={"hadis": {"planner": p}})
            for p in hadis["planner"].choices
        ),
        *(
            alternative("swap-aware planning", label, options={"hadis": {"swap_aware": value}})
            for label, value in (("on", None), ("off", False))
        ),
        *(
            alternative("swap rule rate", _text(r), options={"hadis": {"swap_fid_s_per_gpu_s": r}})
            for r in SWAP_RATES
        ),
        *(alternative("swap cost load_s", _text(v), {"load_s": v}) for v in SWAP_LOAD_S),
        *(
            alternative("queued queries on a plan change", c, {"on_plan_change": c})
            for c in PLAN_CHANGE_MODES
        ),
        *(alternative("re-route order", o, {"reroute_order": o}) for o in REROUTE_ORDERS),
        *(
            alternative("Proteus routing", r, options={"proteus": {"routing": r}})
            for r in proteus["routing"].choices
        ),
    ]


def preset_alternatives() -> list[Alternative]:
    """One alternative per modelling preset: its SimConfig values and each method's options."""
    rows = []
    for name in MODELLING_PRESETS:
        preset = get_preset(name)
        applied = {m: preset.apply({}, m, {}, {"policy"}) for m in METHODS}
        sim = applied[METHODS[0]][0]
        rows.append(
            alternative(PRESET_CHOICE, name, sim, {m: applied[m][2] for m in METHODS})
        )
    return rows


def per_seed_rows(ctx: FigureContext, alt: Alternative) -> pd.DataFrame:
    """method, seed and KEYS of both methods under `alt` (`seeds.seed_rows`: each seed on its
    bundle replicate; quick mode: the first QUICK_SEEDS seeds)."""
    return seeds.seed_rows(
        ctx,
        TRACE,
        METHODS,
        KEYS,
        sim=alt.sim,
        policy_options=alt.options,
        n_seeds=QUICK_SEEDS if ctx.quick else None,
    )


def summary_row(alt: Alternative, per_seed: pd.DataFrame) -> dict[str, object]:
    """One table row: per method the means and CI half-widths, and the paired gaps."""
    row: dict[str, object] = {
        "choice": alt.choice,
        "alternative": alt.value,
        "setting": alt.setting,
        "default": not alt.sim and not alt.options,
        "n_seeds": int(per_seed["seed"].nunique()),
    }
    means = seeds.mean_rows(per_seed, KEYS).set_index("method")
    for m in METHODS:
        for k in KEYS:
            row[f"{m}_{k}"] = means.at[m, k]
            row[f"{m}_{k}_ci95"] = means.at[m, f"{k}_ci95"]
    for k in KEYS:
        gap = np.subtract(*seeds.paired_values(per_seed, k, *METHODS))
        row[f"{k}_gap"] = float(gap.mean())
        row[f"{k}_gap_ci95"] = seeds.ci_half_width(gap)
    return row


def compute(ctx: FigureContext) -> pd.DataFrame:
    alts = [*choice_alternatives(), *preset_alternatives()]
    return pd.DataFrame([summary_row(a, per_seed_rows(ctx, a)) for a in alts], columns=COLUMNS)


# ----------------------------------------------------------------------------- plot


def row_labels(data: pd.DataFrame) -> list[str]:
    """'choice: alternative', starred where it is the default preset's setting."""
    rows = data[["choice", "alternative", "default"]].itertuples(index=False)
    return [f"{c}: {a}" + (" *" if d else "") for c, a, d in rows]


def plot(data: pd.DataFrame, ax=None) -> Figure:
    """FID (left) and SLO violations (right) of HADIS and Proteus per row, 95% CI bars; the
    default preset's settings are starred."""
    fig, axes = style.figure_axes(
        ax, 1, 2, width_in=2 * style.COLUMN_IN, height_in=0.6 + 0.16 * len(data), sharey=True
    )
    y = np.arange(len(data))[::-1]
    for panel, (key, scale, label) in zip(
        axes[0], (("fid", 1.0, "FID ↓"), ("slo_violation_ratio", 100.0, "SLO viol. (%) ↓"))
    ):
        for offset, m in zip((0.15, -0.15), METHODS):
            panel.errorbar(
                scale * data[f"{m}_{key}"],
                y + offset,
                xerr=scale * data[f"{m}_{key}_ci95"].fillna(0.0),
                fmt="o",
                ms=3,
                elinewidth=0.8,
                capsize=1.5,
                color=style.METHOD_COLORS[m],
                label=style.METHOD_LABELS[m],
            )
        panel.set_xlabel(label)
        panel.grid(axis="y", visible=False)
    axes[0, 1].set_xlim(left=-2)  # a violation ratio is not negative (t intervals may reach it)
    axes[0, 0].set_yticks(y, row_labels(data))
    axes[0, 1].legend(loc="lower right")
    return fig


# ----------------------------------------------------------------------------- report


def claims(data: pd.DataFrame) -> list[Claim]:
    return []  # a sensitivity table checks no paper claim: report_lines puts it in the report


def report_lines(data: pd.DataFrame) -> list[str]:
    """The table as Markdown rows for REPRODUCTION.md (mean ± 95% CI half-width)."""

    def pm(value: float, ci: float, scale: float = 1.0, unit: str = "") -> str:
        return f"{scale * value:.2f}{unit} ± {scale * ci:.2f}{unit}"

    lines = [
        f"Azure trace, {int(data['n_seeds'].min())} seeds; * = the default preset's setting; "
        "gap = HADIS − Proteus, paired over seeds. A verdict of Fig. 7 hinges on a choice "
        "when a gap's sign changes between its alternatives.",
        "",
        "| choice | alternative | setting | HADIS FID | Proteus FID | FID gap | HADIS viol. | "
        "Proteus viol. | viol. gap |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in data.itertuples(index=False):
        star = " *" if r.default else ""
        v = "slo_violation_ratio"
        lines.append(
            f"| {r.choice} | {r.alternative}{star} | {r.setting} | "
            f"{pm(r.hadis_fid, r.hadis_fid_ci95)} | {pm(r.proteus_fid, r.proteus_fid_ci95)} | "
            f"{pm(r.fid_gap, r.fid_gap_ci95)} | "
            f"{pm(getattr(r, f'hadis_{v}'), getattr(r, f'hadis_{v}_ci95'), 100, '%')} | "
            f"{pm(getattr(r, f'proteus_{v}'), getattr(r, f'proteus_{v}_ci95'), 100, '%')} | "
            f"{pm(getattr(r, f'{v}_gap'), getattr(r, f'{v}_gap_ci95'), 100, ' pp')} |"
        )
    return lines
