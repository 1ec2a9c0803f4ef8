"""The emulated validation of the simulator (`results/VALIDATION.md`): one `t2isim validate`
per experiment (default bundle, 16 replicas, time scale 0.1, 3 real runs each), then a report of
the issue-14 goals per experiment and each experiment's fidelity table, under hand-written notes.

    python benchmarks/validation_report.py --run [--only NAME,...]   # real runs + report
    python benchmarks/validation_report.py                           # re-report (--reuse-real)

The first experiment (`CALIBRATION`) measures the per-hop overheads in-sample; every other one
is compared with a simulation that applies those (out of sample: its own real runs never set
them), its in-sample error beside. The last line is `goals_met=N/M` over the goals the
experiments report (p50, p99, violations, same plan).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pandas as pd

COMMON = (
    "--bundle default --load-s 0 --backend emulated --workers 16 --time-scale 0.1 --repeats 3 "
    "--num-cpus 2"
)
STATIC = "--policy static-cascade --option light=SDXL-Lightning --option heavy=SD3.5-Large-Turbo"
AZURE = "azure:peak=24,min=1,seconds_per_hour=0.2"  # the Azure shape in 69 s, 977 queries
CONSTANT = "constant:rate=12,duration=60"
EXPERIMENTS = {  # name -> policy arguments, trace
    "static-azure": (STATIC, AZURE),
    "static-constant": (STATIC, CONSTANT),
    "proteus-azure": ("--policy proteus", AZURE),
    "proteus-constant": ("--policy proteus", CONSTANT),
    "hadis-constant": ("--policy hadis", CONSTANT),
    "hadis-azure": ("--policy hadis", AZURE),
    "static-azure-full": (STATIC, "azure:peak=24,min=1"),  # 346 s, 4,912 queries
}
CALIBRATION = "static-azure"
GOAL_METRICS = ("p50_latency_s", "p99_latency_s", "slo_violation_ratio", "same_plan_share")


def command(name: str, folder: Path, reuse: bool) -> list[str]:
    """The `t2isim validate` command of one experiment."""
    policy, trace = EXPERIMENTS[name]
    args = ["t2isim", "validate", *COMMON.split(), *policy.split(), "--trace", trace]
    args += ["--out", str(folder / name)]
    if name != CALIBRATION:
        args += ["--overheads", str(folder / CALIBRATION / "overheads.json")]
    return args + (["--reuse-real"] if reuse else [])


def goals_row(name: str, table: pd.DataFrame) -> tuple[dict, int, int]:
    """One line of the goals table: each goal's error (real spread) and met; counts."""
    rows = table.set_index("metric")
    label = f"{name} (calibration: in sample)" if name == CALIBRATION else name
    row, met, total = {"experiment": label}, 0, 0
    for metric in GOAL_METRICS:
        r = rows.loc[metric]
        if metric == "same_plan_share":
            text = f"{r.real_mean * 100:.0f}%"
        else:
            text = f"{r.error:+.1f} {r.unit} (±{r.real_spread:.2g})"
            if "error_measured_overheads" in rows.columns:
                text += f", in-sample {r.error_measured_overheads:+.1f}"
        ok = bool(r.goal_met) if r.goal_met == r.goal_met else False
        row[metric] = f"{text} {'yes' if ok else 'no'}"
        met += ok
        total += 1
    return row, met, total


def report(folder: Path, names: list[str], notes: str) -> tuple[str, int, int]:
    lines = [notes.rstrip(), "", "## Goals per experiment (generated)", ""]
    header = "| experiment | p50 error | p99 error | violations error | same plan |"
    lines += [header, "|---|---|---|---|---|"]
    sections, met, total = [], 0, 0
    for name in names:
        path = folder / name / "fidelity.csv"
        if not path.is_file():
            lines.append(f"| {name} | not run | | | |")
            continue
        row, m, t = goals_row(name, pd.read_csv(path))
        met, total = met + m, total + t
        lines.append("| " + " | ".join(row[k] for k in ("experiment", *GOAL_METRICS)) + " |")
        text = (folder / name / "fidelity.md").read_text().replace("## ", f"### {name}: ", 1)
        sections += [text, f"`{' '.join(command(name, folder, False))}`", ""]
    lines += [
        "",
        "Each cell: the simulation's error with the calibration's overheads, the real runs' "
        "spread (sample std, same unit), the error with the experiment's own (in-sample) "
        "overheads, whether the goal is met by the first (|p50| <= 5%, |p99| <= 10%, "
        "violations within 1 pp or the spread, the same plan in >= 90% of plan epochs).",
        "",
        "## Fidelity tables (generated)",
        "",
        *sections,
    ]
    return "\n".join(lines) + "\n", met, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="store_true", help="do the real runs (else re-report)")
    parser.add_argument("--only", help="comma-separated experiments (default: all)")
    parser.add_argument("--dir", type=Path, default=Path("results/validation"))
    parser.add_argument("--notes", type=Path, default=Path("results/validation/NOTES.md"))
    parser.add_argument("--out", type=Path, default=Path("results/VALIDATION.md"))
    args = parser.parse_args()
    names = list(EXPERIMENTS) if not args.only else args.only.split(",")
    unknown = sorted(set(names) - set(EXPERIMENTS))
    if unknown:
        sys.exit(f"--only {unknown[0]}: expected some of {', '.join(EXPERIMENTS)}")
    for name in sorted(names, key=lambda n: n != CALIBRATION):  # calibration first
        if args.run or (args.dir / name / "real-1").is_dir():
            print(" ".join(command(name, args.dir, not args.run)), flush=True)
            subprocess.run(command(name, args.dir, not args.run), check=True)
    notes = args.notes.read_text() if args.notes.is_file() else "# Validation\n"
    text, met, total = report(args.dir, names, notes)
    args.out.write_text(text)
    print(f"goals_met={met}/{total}")


if __name__ == "__main__":
    main()
