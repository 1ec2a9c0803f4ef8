"""The arrival charge's sensitivity over validation folders: per folder (an experiment of
`t2isim validate` re-reported since the charge was added), the charge measured over all its
real runs with its standard error, and the p50 error without and with the charge, in sample
and held out.

    python benchmarks/arrival_charge_table.py DIR [DIR ...]

Prints a Markdown table; last line `arrival_charge_p50_shift_pts=<min>..<max>` (the held-out
p50 error with the charge less without, over the folders that have both).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from serving.arrival_charge import ARRIVAL_CHARGE_FILE
from simulator.errors import InputError

COLUMNS = (
    "error",
    "error_arrival_charge",
    "error_leave_one_out",
    "error_leave_one_out_arrival_charge",
)


def folder_row(folder: Path) -> dict:
    """One folder's charge and p50 errors; InputError if it lacks them."""
    charge_file, fidelity_file = folder / ARRIVAL_CHARGE_FILE, folder / "fidelity.csv"
    if not (charge_file.is_file() and fidelity_file.is_file()):
        raise InputError(f"{folder}: no {ARRIVAL_CHARGE_FILE} (re-report it with `validate`)")
    charge = pd.read_csv(charge_file).set_index("run").loc["all"]
    p50 = pd.read_csv(fidelity_file).set_index("metric").loc["p50_latency_s"]
    return {
        "folder": str(folder),
        "charge_ms": charge["charge_ms"],
        "charge_se_ms": charge["charge_se_ms"],
        **{c: p50.get(c, float("nan")) for c in COLUMNS},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    args = parser.parse_args()
    try:
        rows = pd.DataFrame([folder_row(f) for f in args.folders])
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    print("| folder | charge (ms) | p50 error | with charge | held out | held out with charge |")
    print("|---|---|---|---|---|---|")
    for r in rows.itertuples():
        print(
            f"| {r.folder} | {r.charge_ms:.2f} ± {r.charge_se_ms:.2f} | {r.error:+.1f}% | "
            f"{r.error_arrival_charge:+.1f}% | {r.error_leave_one_out:+.1f}% | "
            f"{r.error_leave_one_out_arrival_charge:+.1f}% |"
        )
    shift = (rows["error_leave_one_out_arrival_charge"] - rows["error_leave_one_out"]).dropna()
    low, high = (shift.min(), shift.max()) if len(shift) else (float("nan"),) * 2
    print(f"arrival_charge_p50_shift_pts={low:+.2f}..{high:+.2f}")


if __name__ == "__main__":
    main()
