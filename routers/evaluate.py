"""Evaluate routers: fit on train, calibrate on the calibration split, report on test.

Curves are taken on the test prompts at every heavy share k/n (the k highest-scoring prompts go
heavy, ties in seeded random order), so the metrics of `routers.metrics` measure the router's
ranking; calibration reports, per target share, the threshold found on the calibration split
and the share it realises there and on test.

With several seeded splits (``runs``: one list of results per split), ``routers.csv`` holds the
mean over splits of each summary column plus its sample std (``<column>_std``, ddof = 1) and a
``repeats`` column; a NaN in any split (e.g. a CPT target never reached) makes that mean NaN.
``curves.csv`` and ``calibration.csv`` then keep every split's rows, tagged with a ``repeat``
column (0 = first seed), and the plot shows the mean curve. One split writes the plain tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from simulator.errors import InputError
from simulator.limits import MAX_SPLITS

from .base import Router, heavy_mask
from .data import Split
from .ecvl import EcvlRouter
from .metrics import (
    apgr,
    call_performance_threshold,
    cloud_call_saving,
    ecvl_outcome,
    heavy_first_order,
    light_share_at_quality_drop,
    performance_gap_recovered,
    routed_quality_curve,
    value_at_share,
)
from .nn import single_blas_thread

HEAVY_SHARES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
DP_TARGETS = (0.4, 0.5, 0.6, 0.7, 0.8)
SUMMARY_COLUMNS = (
    "router",
    "apgr",
    "cpt50",
    "dp_at_50",
    "saving_at_dp50",
    "light_share_at_10pct_drop",
)


class RepeatsError(InputError):
    """A number of repeated splits below 1."""


def repeat_seeds(seed: int, repeats: int) -> list[int]:
    """The seeds of ``repeats`` splits: seed, seed + 1, ... (at most `T2ISIM_MAX_SPLITS`)."""
    if repeats < 1:
        raise RepeatsError(f"--repeats must be >= 1, got {repeats}")
    MAX_SPLITS.check(repeats, "--repeats")
    return [seed + i for i in range(repeats)]


@dataclass(frozen=True, eq=False)
class RouterResult:
    name: str
    shares: np.ndarray  # k / n, k = 0..n
    quality: np.ndarray  # routed mean quality on test at each share
    pgr: np.ndarray
    summary: dict[str, float]
    savings: dict[float, float]  # ΔP target -> cloud-call saving
    metrics_at_50: dict[str, float]  # every data metric's routed mean at 50 % heavy share
    calibration: pd.DataFrame  # target, threshold, realised_calib, realised_test
    ecvl: dict[str, float] | None  # the ECVL scenario's own decision (τ = 0) on test


def evaluate_router(router: Router, split: Split, seed: int) -> RouterResult:
    """Fit on train, calibrate on calib, measure on test.

    BLAS runs on one thread: the routers' many small matrix products only lose to thread
    contention on few cores (a 384 x 384 eigh: 0.07 s alone, up to 2 s on a busy 2-core box)."""
    with single_blas_thread():
        router.fit(split.train)
        scores = router.score(split.test.batch)
        calib_scores = router.score(split.calib.batch)
    test = split.test
    order = heavy_first_order(scores, seed)
    shares, quality = routed_quality_curve(test.light_quality, test.heavy_quality, order)
    light_mean, heavy_mean = test.light_quality.mean(), test.heavy_quality.mean()
    pgr = performance_gap_recovered(quality, light_mean, heavy_mean)
    summary = {
        "apgr": apgr(shares, pgr),
        "cpt50": call_performance_threshold(shares, pgr, 0.5),
        "dp_at_50": value_at_share(shares, pgr, 0.5),
        "saving_at_dp50": cloud_call_saving(shares, pgr, 0.5),
        "light_share_at_10pct_drop": light_share_at_quality_drop(shares, quality, heavy_mean, 0.1),
    }
    k50 = int(round(0.5 * len(test)))
    metrics_at_50 = {}
    for metric, values in test.metrics().items():
        served = values[:, test.light].copy()
        served[order[:k50]] = values[order[:k50], test.heavy]
        metrics_at_50[metric] = float(served.mean())
    rows = []
    for target in HEAVY_SHARES:
        cal = router.calibrate_scores(calib_scores, target)
        realised_test = float(np.mean(heavy_mask(scores, cal.threshold)))
        rows.append((target, cal.threshold, cal.realised_heavy_share, realised_test))
    calibration = pd.DataFrame(
        rows, columns=["target", "threshold", "realised_calib", "realised_test"]
    )
    ecvl = None
    if isinstance(router, EcvlRouter):
        heavy = scores > 0.0
        served = np.where(heavy, test.heavy_quality, test.light_quality)
        latency_s = router.latency_s_
        ecvl = ecvl_outcome(
            served, heavy, router.mes_, latency_s, latency_s, router.scenario.weights
        )
        weights = router.scenario.weights
        ecvl.update(
            mes=router.mes_,
            mes_quantile=router.scenario.mes_quantile,
            w_solve=weights.solve,
            w_cost=weights.cost,
            w_latency=weights.latency,
        )
    return RouterResult(
        name=router.name,
        shares=shares,
        quality=quality,
        pgr=pgr,
        summary=summary,
        savings={t: cloud_call_saving(shares, pgr, t) for t in DP_TARGETS},
        metrics_at_50=metrics_at_50,
        calibration=calibration,
        ecvl=ecvl,
    )


def summary_table(results: list[RouterResult]) -> pd.DataFrame:
    """One row per router with the columns of ``routers.csv``."""
    return pd.DataFrame(
        [{"router": r.name, **r.summary} for r in results], columns=list(SUMMARY_COLUMNS)
    )


def repeated_summary_table(runs: list[list[RouterResult]]) -> pd.DataFrame:
    """Per router: mean over splits of each summary column, then the sample stds, then repeats."""
    if len(runs) < 2:
        raise ValueError(f"repeated_summary_table needs >= 2 splits, got {len(runs)}")
    per_run = pd.concat([summary_table(results) for results in runs], ignore_index=True)
    grouped = per_run.groupby("router", sort=False)
    values = list(SUMMARY_COLUMNS[1:])
    mean = grouped[values].agg(lambda column: column.mean(skipna=False))
    std = grouped[values].agg(lambda column: column.std(ddof=1, skipna=False))
    table = pd.concat([mean, std.add_suffix("_std")], axis=1).reset_index()
    table["repeats"] = len(runs)
    return table


def curve_table(results: list[RouterResult]) -> pd.DataFrame:
    """Routed quality and ΔP at the reported heavy shares, long format."""
    rows = [
        {
            "router": r.name,
            "heavy_share": s,
            "quality": value_at_share(r.shares, r.quality, s),
            "dp": value_at_share(r.shares, r.pgr, s),
        }
        for r in results
        for s in HEAVY_SHARES
    ]
    return pd.DataFrame(rows)


def calibration_table(results: list[RouterResult]) -> pd.DataFrame:
    return pd.concat([r.calibration.assign(router=r.name) for r in results], ignore_index=True)[
        ["router", "target", "threshold", "realised_calib", "realised_test"]
    ]


def tag_repeats(tables: list[pd.DataFrame]) -> pd.DataFrame:
    """One split's table as is; several stacked with a leading ``repeat`` column (0, 1, ...)."""
    if len(tables) == 1:
        return tables[0]
    return pd.concat(
        [table.assign(repeat=i)[["repeat", *table.columns]] for i, table in enumerate(tables)],
        ignore_index=True,
    )


def plot_quality_vs_share(runs: list[list[RouterResult]], splits: list[Split], path: Path) -> None:
    """Routed test quality vs heavy share per router, mean over splits (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    colors = plt.get_cmap("tab20")
    for i, r in enumerate(runs[0]):
        style = {"oracle": ("black", "--"), "random": ("grey", ":")}.get(
            r.name, (colors(i % 20), "-" if i < 10 else "-.")
        )
        quality = np.mean([results[i].quality for results in runs], axis=0)
        ax.plot(r.shares, quality, label=r.name, lw=1.2, color=style[0], ls=style[1])
    test = splits[0].test
    light, heavy = test.pair_names
    ax.axhline(np.mean([s.test.light_quality.mean() for s in splits]), color="grey", ls=":", lw=1)
    ax.axhline(np.mean([s.test.heavy_quality.mean() for s in splits]), color="black", ls=":", lw=1)
    ax.set_xlabel(f"heavy share (prompts sent to {heavy})")
    ax.set_ylabel(f"mean quality (light = {light})")
    over = f", mean over {len(splits)} splits" if len(splits) > 1 else ""
    ax.set_title(f"{test.name}: routed quality on {len(test)} test prompts{over}")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120, metadata={"Software": None})
    plt.close(fig)


def write_outputs(runs: list[list[RouterResult]], splits: list[Split], out_dir: Path) -> list[Path]:
    """routers.csv, curves.csv, calibration.csv, quality_vs_share.png under out_dir.

    ``runs[i]`` holds every router's result on ``splits[i]``; see the module docstring.
    """
    if not runs or len(runs) != len(splits):
        raise ValueError(
            f"write_outputs needs one result list per split, got {len(runs)} for {len(splits)}"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "routers.csv": summary_table(runs[0]) if len(runs) == 1 else repeated_summary_table(runs),
        "curves.csv": tag_repeats([curve_table(results) for results in runs]),
        "calibration.csv": tag_repeats([calibration_table(results) for results in runs]),
    }
    written = []
    for name, table in paths.items():
        table.to_csv(out_dir / name, index=False, float_format="%.6g")
        written.append(out_dir / name)
    plot_quality_vs_share(runs, splits, out_dir / "quality_vs_share.png")
    written.append(out_dir / "quality_vs_share.png")
    return written
