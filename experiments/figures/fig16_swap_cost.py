"""Swap cost (not a paper figure): SLO violations and FID on the Azure trace as the model load
time grows, for Proteus, HADIS planning without swap cost (``swap_aware=false``, as the HADIS
artifact) and HADIS's default planner, which keeps its plan through demand dips unless the FID
gain pays for the loading (`policies.planning.SwapRule`).

A worker whose model changes serves nothing for the model's load time. Settings: one load time
for every model (``--load-s`` 0, 2, 5, 10, 20 s; not in quick mode) and the default bundle's own
per-model times (``bundle``: 2.3 s SDXL-Lightning, 5.3 s SD3.5-Medium, 9.0 s SD3.5-Large and
-Large-Turbo; their source is in `simulator.default_bundle`). The papers simulate free swaps,
so nothing here is compared with them. Runs through `FigureContext.sweep` (store
``sweeps/fig16``) on the seeds of `seeds.seeds_of`. Data: one row per method and setting with
means over seeds and 95% CI half-widths. FID counts completed queries only: where most queries
time out or drop (Proteus at 20 s), it is the FID of the few served.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from experiments.figures import fig07_azure as azure
from experiments.figures import seeds, style
from experiments.figures import verdicts as v
from experiments.figures.context import Claim, FigureContext

if TYPE_CHECKING:
    from matplotlib.figure import Figure

NAME = "fig16"
TITLE = "Swap cost: SLO violations and FID vs model load time, with and without planning for it"
UNAWARE = "hadis-swap-unaware"  # HADIS with swap_aware=false
LABELS = {**style.METHOD_LABELS, UNAWARE: "HADIS, swap-unaware"}
METHODS = ("proteus", UNAWARE, "hadis")
LOADS_S = (0.0, 2.0, 5.0, 10.0, 20.0)
QUICK_LOADS_S = ()  # quick mode: the bundle's load times only
BUNDLE = "bundle"  # the bundle's per-model load times
KEYS = ("slo_violation_ratio", "fid")
COLUMNS = ["method", "load", "load_s", "n_seeds", *KEYS, *(f"{k}_ci95" for k in KEYS)]


def _runs(ctx: FigureContext, load_s: float | None) -> pd.DataFrame:
    """Per-seed rows of every method at one load time (None: the bundle's)."""
    sim = {} if load_s is None else {"load_s": load_s}
    plain = seeds.seed_rows(
        ctx,
        azure.AZURE_TRACE,
        ("proteus", "hadis"),
        KEYS,
        store=NAME,
        sim=sim,
        policy_options={"hadis": {"swap_aware": False}},
    )
    plain["method"] = plain["method"].replace({"hadis": UNAWARE})
    aware = seeds.seed_rows(ctx, azure.AZURE_TRACE, ("hadis",), KEYS, store=NAME, sim=sim)
    return pd.concat([plain, aware], ignore_index=True)


def compute(ctx: FigureContext) -> pd.DataFrame:
    settings = [*(QUICK_LOADS_S if ctx.quick else LOADS_S), None]
    frames = []
    for load_s in settings:
        runs = _runs(ctx, load_s)
        means = seeds.mean_rows(runs[["method", "seed", *KEYS]], KEYS)
        label = BUNDLE if load_s is None else f"{load_s:g}"
        frames.append(means.assign(load=label, load_s=np.nan if load_s is None else load_s))
    data = pd.concat(frames, ignore_index=True)
    rank = {m: i for i, m in enumerate(METHODS)}
    data = data.assign(_rank=data["method"].map(rank)).sort_values(["_rank"], kind="stable")
    return data.reset_index(drop=True)[COLUMNS]


def claims(data: pd.DataFrame) -> list[Claim]:
    rows = data[data["load"] == BUNDLE].set_index("method")
    zero = data[data["load"] == "0"].set_index("method")

    def text(method: str) -> str:
        row = rows.loc[method]
        out = f"{100 * row['slo_violation_ratio']:.2f}% violations, FID {row['fid']:.2f}"
        if method in zero.index:
            free = zero.loc[method]
            out += f" (free swaps: {100 * free['slo_violation_ratio']:.2f}%, {free['fid']:.2f})"
        return out

    ours = "; ".join(f"{LABELS[m]}: {text(m)}" for m in METHODS)
    return [
        Claim(
            NAME,
            "with the default bundle's model load times, HADIS's swap-aware planner keeps SLO "
            "violations low where planning without swap cost does not",
            "not studied: the papers' simulations swap models for free",
            ours,
            v.NOT_COMPARABLE,
            f"{UNAWARE} = HADIS with --option swap_aware=false; means over seeds, the trace "
            f"{azure.AZURE_TRACE}; load times and their source in simulator/default_bundle.py",
        )
    ]


def plot(data: pd.DataFrame, ax=None) -> Figure:
    """SLO violations and FID per uniform load time (lines) and with the bundle's per-model load
    times (the separate point on the right): 1 x 2 axes."""
    fig, axes = style.figure_axes(ax, 1, 2, width_in=2 * style.COLUMN_IN, height_in=2.3)
    labels = list(dict.fromkeys(data["load"]))
    for method in METHODS:
        rows = data[data["method"] == method].set_index("load").loc[labels]
        kw = {**style.method_line(method), "capsize": 1.5}
        if method == UNAWARE:
            kw.update(color=style.METHOD_COLORS["hadis"], ls="--", label=LABELS[UNAWARE])
        uniform = (rows.index != BUNDLE).tolist()
        for panel, key, scale in ((axes[0, 0], "slo_violation_ratio", 100), (axes[0, 1], "fid", 1)):
            y, err = scale * rows[key].to_numpy(), scale * rows[f"{key}_ci95"].to_numpy()
            x = np.arange(len(labels))
            panel.errorbar(x[uniform], y[uniform], yerr=err[uniform], **kw)
            bundle = ~np.array(uniform)
            alone = {**kw, "ls": "none", "label": None if any(uniform) else kw["label"]}
            panel.errorbar(x[bundle], y[bundle], yerr=err[bundle], **alone)
    ticks = [f"{BUNDLE}\n(2.3-9 s)" if label == BUNDLE else label for label in labels]
    for panel, ylabel in zip(axes[0], ("SLO violations (%)", "FID")):
        panel.set(xlabel="model load time (s)", ylabel=ylabel)
        panel.set_xticks(np.arange(len(labels)), ticks)
    axes[0, 0].legend(loc="upper left")
    return fig
