"""How much of the tiny replicas' CPU excess is the stack preempting them? Session 23's test,
fixed before its run. For one validation folder (`t2isim validate --backend diffusers`), per
model: its real runs' batches of one (`batches.csv`: thread CPU less the discriminator's charge,
and how often the kernel preempted the engine's thread), the CPU fitted on the preemption count
by least squares (`serving.service_times.preemption_fit`), against the bundle's p50 after idle.

    python benchmarks/preemption_fit.py VALIDATION_DIR --bundle BUNDLE

Prints per model: the batches, the CPU p50 and its excess over the profile after idle, the
median count, the slope (ms per preemption) and the intercept (a batch never preempted), each
with its standard error, and the reading of the rule fixed in session 23: "preemption" when
the intercept is within 5% of the profile after idle and slope x median count is at least half
of the excess; "not preemption" when the intercept alone exceeds it by more than 5%; else
"inconclusive". Last line: `preemption_readings=<model>:<reading>,...`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from serving.service_times import discriminator_charge_s, preemption_fit, read_batches
from simulator.bundle import BundleError, load_bundle
from simulator.config import SimConfig

INTERCEPT_TOLERANCE = 0.05  # of the profile's p50 after idle
SHARE_OF_EXCESS = 0.5


def reading(intercept_s: float, explained_s: float, excess_s: float, idle_s: float) -> str:
    """The rule fixed before session 23's run (module docstring)."""
    if intercept_s > idle_s * (1 + INTERCEPT_TOLERANCE):
        return "not preemption"
    if abs(intercept_s / idle_s - 1) <= INTERCEPT_TOLERANCE and explained_s >= (
        SHARE_OF_EXCESS * excess_s
    ):
        return "preemption"
    return "inconclusive"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a diffusers validation's output folder")
    parser.add_argument("--bundle", required=True, help="the bundle its runs served")
    args = parser.parse_args()
    runs = sorted(args.folder.glob("real-*"))
    batches = read_batches(runs) if runs else None
    if batches is None:
        parser.error(f"{args.folder}: no real runs with batches.csv (real-*/batches.csv)")
    try:
        bundle = load_bundle(args.bundle)
    except BundleError as exc:
        parser.error(f"--bundle {args.bundle!r}: {exc}")
    sim = json.loads((runs[0] / "config.json").read_text())["sim"]
    config = SimConfig(**{k: sim[k] for k in ("disc_cost_s", "disc_cost_per", "time_scale")})
    served = pd.concat(batches, ignore_index=True)
    charge_s = discriminator_charge_s(served, config, bool(served["judged"].any()))
    fits = preemption_fit(served, charge_s)
    if fits.empty:
        parser.error(f"{args.folder}: no batches of one with CPU times and preemption counts")
    profile = bundle.latency[bundle.latency["batch_size"] == 1].set_index("model")
    column = "latency_idle_p50_s" if "latency_idle_p50_s" in profile else "latency_p50_s"
    readings = []
    for f in fits.itertuples():
        idle_s = float(profile.loc[f.model, column])
        excess_s = f.cpu_p50_s - idle_s
        explained_s = f.slope_s * f.preemptions_p50
        said = reading(f.intercept_s, explained_s, excess_s, idle_s)
        readings.append(f"{f.model}:{said.replace(' ', '-')}")
        print(
            f"{f.model}: {f.batches} batches of one, CPU p50 {f.cpu_p50_s * 1e3:.2f} ms, "
            f"profile after idle {idle_s * 1e3:.2f} ms (excess {excess_s * 1e3:+.2f} ms); "
            f"preempted {f.preemptions_p50:g} times at the median; slope "
            f"{f.slope_s * 1e3:.3f} ± {f.slope_se_s * 1e3:.3f} ms per preemption, intercept "
            f"{f.intercept_s * 1e3:.2f} ± {f.intercept_se_s * 1e3:.2f} ms "
            f"(x{f.intercept_s / idle_s:.3f} the profile after idle); slope x median "
            f"{explained_s * 1e3:.2f} ms: {said}"
        )
    print("preemption_readings=" + ",".join(readings))


if __name__ == "__main__":
    main()
