"""Figures of a single run (paper style: shared time axis, labelled units, 150 dpi PNG)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def plot_run(timeseries: pd.DataFrame, summary: dict, path: Path) -> Path:
    """Demand, FID and SLO-violation ratio over time, and workers per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = timeseries["second"]
    fig, axes = plt.subplots(4, 1, figsize=(7.5, 8.0), sharex=True, constrained_layout=True)
    axes[0].plot(t, timeseries["arrivals"], lw=0.8, color="0.6", label="arrivals")
    axes[0].plot(t, timeseries["demand_estimate_qps"], lw=1.2, label="demand estimate")
    axes[0].set_ylabel("QPS")
    axes[0].legend(loc="upper right", fontsize=8, frameon=False)
    axes[1].plot(t, timeseries["realised_fid"], lw=1.2, label=f"realised ({summary['fid_method']})")
    axes[1].plot(t, timeseries["planned_fid"], lw=1.0, ls="--", label="planned (b)")
    axes[1].set_ylabel("FID")
    axes[1].legend(loc="upper right", fontsize=8, frameon=False)
    window = max(1, min(10, len(t) // 20))
    violations = (timeseries["timeouts"] + timeseries["drops"]).rolling(window, min_periods=1).sum()
    arrivals = timeseries["arrivals"].rolling(window, min_periods=1).sum().clip(lower=1)
    axes[2].plot(t, violations / arrivals, lw=1.2, color="tab:red")
    axes[2].set_ylabel(f"SLO violations\n({window} s window)")
    axes[2].set_ylim(-0.02, 1.02)
    for column in [c for c in timeseries.columns if c.startswith("workers_")]:
        if timeseries[column].any():
            axes[3].step(t, timeseries[column], where="post", lw=1.2, label=column[8:])
    axes[3].set_ylabel("workers")
    axes[3].set_xlabel("time (s)")
    axes[3].legend(loc="upper right", fontsize=8, frameon=False)
    fig.suptitle(
        f"{summary['policy']}: FID {summary['fid']:.2f}, "
        f"SLO violations {summary['slo_violation_ratio']:.1%}",
        fontsize=10,
    )
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return path
