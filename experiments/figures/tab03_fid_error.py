"""The FID estimators' out-of-sample error (not a paper figure): how far `fid_exact` and
`fid_table` are from FIDs measured on real images, which the verdicts use to label a FID
comparison "within estimator error" (`verdicts.fid_estimator_error`).

Data: one row per (source, estimator, held-out set): n, ``mean_abs_fid``, ``max_abs_fid``,
``bias_fid`` (mean predicted − measured) and ``used_here`` (the estimator this bundle's runs
report as ``fid``, which every comparison of this report is scored by).

* source ``hadis-artifact``: the committed measurement `simulator/data/fid_estimator_error.json`
  (`t2isim bundle fid-error ARTIFACT` reruns it; `simulator.fid_error` says how: k-fold over
  the artifact's cascade tables, plus its random-routing FIDs that no fit saw). It is the same
  on every bundle, so the report's verdicts do not depend on where the artifact lies.
* source ``this bundle``: the table estimator's k-fold over the bundle's own cascade table (its
  interpolation error; the bundle's FIDs taken as measured), on any bundle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from experiments.figures import style
from experiments.figures.context import Claim, FigureContext
from simulator import fid_error
from simulator.metrics import fid_method_of

if TYPE_CHECKING:
    from matplotlib.figure import Figure

NAME = "tab03"
TITLE = "FID estimators: out-of-sample error against FIDs measured on real images"
ARTIFACT = "hadis-artifact"
THIS_BUNDLE = "this bundle"
COLUMNS = [
    "source",
    "estimator",
    "set",
    "n",
    "mean_abs_fid",
    "max_abs_fid",
    "bias_fid",
    "used_here",
]


def compute(ctx: FigureContext) -> pd.DataFrame:
    used = fid_method_of(ctx.bundle)
    committed = fid_error.committed_summary().assign(source=ARTIFACT)
    held_out = fid_error.bundle_table_kfold(ctx.bundle.cascades)
    error = held_out["error_fid"].to_numpy(dtype=np.float64)
    own = pd.DataFrame(
        [
            {
                "source": THIS_BUNDLE,
                "estimator": "table",
                "set": fid_error.SETS[0],
                "n": len(error),
                "mean_abs_fid": float(np.abs(error).mean()) if len(error) else np.nan,
                "max_abs_fid": float(np.abs(error).max()) if len(error) else np.nan,
                "bias_fid": float(error.mean()) if len(error) else np.nan,
            }
        ]
    )
    data = pd.concat([committed, own], ignore_index=True)
    data["used_here"] = data["estimator"] == used
    return data[COLUMNS]


def plot(data: pd.DataFrame, ax=None) -> Figure:
    """Mean (bar) and max (tick) absolute error per estimator and held-out set, log scale."""
    fig, axes = style.figure_axes(ax, 1, 1, width_in=style.COLUMN_IN, height_in=2.2)
    panel = axes[0, 0]
    labels = [f"{r.estimator} · {r.set}\n({r.source})" for r in data.itertuples()]
    x = np.arange(len(data))
    colors = ["tab:blue" if used else "0.6" for used in data["used_here"]]
    panel.bar(x, data["mean_abs_fid"], color=colors, width=0.7, label="mean |error|")
    panel.scatter(x, data["max_abs_fid"], marker="_", s=120, color="k", label="max |error|")
    panel.set_yscale("log")
    panel.set_ylabel("|predicted − measured| (FID)")
    panel.set_xticks(x, labels, rotation=35, ha="right", fontsize=6)
    panel.legend(loc="upper left", fontsize=6)
    panel.set_title("blue: the estimator of this bundle's runs", fontsize=7)
    panel.grid(axis="x", visible=False)
    return fig


def claims(data: pd.DataFrame) -> list[Claim]:
    return []  # measurements the verdicts use, not claims of a paper
