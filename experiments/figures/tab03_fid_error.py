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
* source ``this bundle``, estimator ``served`` (`served_row`): the FID of the images a run
  served (bundles with per-image features, `simulator.served_features`) is the Fréchet
  distance of those images' features, with no table or fit in between; against the FID of
  the distribution they are drawn from, its error is the finite-sample error only. Measured
  per model: `SERVED_DRAWS` sets of the profile's size (every prompt's images once) drawn from
  the Gaussian of the model's profiled features, each set's Fréchet distance to the reference
  minus that Gaussian's closed form (`profiler.frechet.frechet_distance`); the reference
  statistics are taken as exact (every estimator shares them) and real features are not
  Gaussian, so this is the sampling error under a Gaussian model of the features. A bundle
  without features: "not measured" (no run on it reports ``fid_served``).

``note`` says what a row measures where the columns cannot (`report_lines` puts it in the report).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from experiments.figures import style
from experiments.figures.context import Claim, FigureContext
from profiler.frechet import GaussianStats, frechet_distance, psd_sqrt
from simulator import fid_error
from simulator.bundle import Bundle
from simulator.metrics import images_fid_of

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
    "note",
]
SERVED = "served"
SERVED_DRAWS = 20  # image sets drawn per model
SERVED_SEED = 0  # their RNG seed (the measurement is the same for every run of the report)


def frechet_sampling_error(
    stats: GaussianStats,
    reference: GaussianStats,
    n_images: int,
    draws: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Error of the Fréchet distance of `draws` sets of `n_images` features drawn from
    N(stats.mu, stats.sigma): each set's distance to `reference` (sample mean, ddof-1
    covariance) minus the closed-form distance of the Gaussian itself."""
    exact = frechet_distance(stats.mu, stats.sigma, reference.mu, reference.sigma)
    root, reference_root = psd_sqrt(stats.sigma), psd_sqrt(reference.sigma)
    errors = np.empty(draws)
    for i in range(draws):
        x = stats.mu + rng.standard_normal((n_images, len(stats.mu))) @ root
        drawn = GaussianStats.from_features(x)
        errors[i] = (
            frechet_distance(drawn.mu, drawn.sigma, reference.mu, reference.sigma, reference_root)
            - exact
        )
    return errors


def served_row(bundle: Bundle) -> dict[str, object]:
    """The served estimator's row: its finite-sample error at the profile's size, pooled over
    the bundle's models (module docstring), or "not measured" without per-image features."""
    row = {"source": THIS_BUNDLE, "estimator": SERVED}
    served = bundle.features
    if served is None:
        return {
            **row,
            "set": "finite sample",
            "n": 0,
            "mean_abs_fid": np.nan,
            "max_abs_fid": np.nan,
            "bias_fid": np.nan,
            "note": "not measured: this bundle has no per-image features (features.npz), so no "
            "run on it reports fid_served",
        }
    n_prompts, n_models, k, d = served.features.shape
    reference = GaussianStats(served.reference_mu, served.reference_sigma, served.reference_n)
    rng = np.random.default_rng(SERVED_SEED)
    errors = np.concatenate(
        [
            frechet_sampling_error(
                GaussianStats.from_features(
                    served.features[:, m].reshape(-1, d).astype(np.float64)
                ),
                reference,
                n_prompts * k,
                SERVED_DRAWS,
                rng,
            )
            for m in range(n_models)
        ]
    )
    return {
        **row,
        "set": f"finite sample ({n_prompts * k} images)",
        "n": len(errors),
        "mean_abs_fid": float(np.abs(errors).mean()),
        "max_abs_fid": float(np.abs(errors).max()),
        "bias_fid": float(errors.mean()),
        "note": f"Fréchet distance of the served images' features: error = finite-sample error "
        f"only, measured on {SERVED_DRAWS} draws per model of {n_prompts * k} images (d = {d}) "
        f"from the Gaussian of the model's profiled features vs its closed form (sd "
        f"{errors.std(ddof=1):.3g} FID; reference statistics taken as exact; real features "
        "are not Gaussian)",
    }


def compute(ctx: FigureContext) -> pd.DataFrame:
    used, _ = images_fid_of(ctx.bundle)
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
    data = pd.concat([committed, own, pd.DataFrame([served_row(ctx.bundle)])], ignore_index=True)
    data["used_here"] = data["estimator"] == used
    data["note"] = data["note"].fillna("")
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


def report_lines(data: pd.DataFrame) -> list[str]:
    """One bullet per row with a note (what it measures, or why it is not measured)."""
    return [
        f"- {r.estimator} · {r.set} ({r.source}): {r.note}"
        for r in data.itertuples(index=False)
        if isinstance(r.note, str) and r.note
    ]
