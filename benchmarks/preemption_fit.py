"""How much of the tiny replicas' CPU excess is the stack preempting them? Session 23's test,
fixed before its run. For one validation folder (`t2isim validate --backend diffusers`), per
model: the fit `validate` wrote to DIR/preemption_fit.csv (its real runs' batches of one, thread
CPU less the discriminator's charge fitted on how often the kernel preempted the engine's
thread: `serving.service_times.preemption_fit`), against the bundle's p50 after idle.

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
from pathlib import Path

import pandas as pd

from serving.fidelity_note import PREEMPTION_FILE
from simulator.bundle import BundleError, load_bundle

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
    path = args.folder / PREEMPTION_FILE
    if not path.is_file():
        parser.error(
            f"{path}: no such file (`t2isim validate --backend diffusers` writes it when its "
            "runs counted preemptions; `--reuse-real` rewrites it for runs made before)"
        )
    try:
        bundle = load_bundle(args.bundle)
    except BundleError as exc:
        parser.error(f"--bundle {args.bundle!r}: {exc}")
    fits = pd.read_csv(path)
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
