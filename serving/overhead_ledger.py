"""The ledger of the serving path's overhead runs (`benchmarks/serve_overhead.py`), and the
verdict on the issue's goal read from it: p99 overhead <= 20 ms per query at 100 QPS on 2 cores.

One row per run of the benchmark on the default stack (the lean Serve stack with the aiohttp
load generator, since session 13): when it ran, its p50 and p99 overhead at the reference rate,
the highest rate that met the goal, the share of the machine's CPU the hypervisor stole during
the reference rate's replay, and the CPU per query. The rows before session 33 were transcribed
from the notes of the sessions that ran them (`source`: the section of
`results/validation/HISTORY.md` or NOTES.md); later ones are appended by the benchmark itself
(`--ledger`).

The verdict's rule, fixed in session 33 before that session's runs: a run was "on 2 cores"
unless the hypervisor stole at least `STOLEN_LIMIT_PCT` of the CPU during its reference replay
(a run whose stolen share was not recorded counts as on 2 cores: it cannot be excused). The goal
is met when every run on 2 cores met it.

That rule judges every version of the stack at once. Beside it the evidence counts the stack as
it is (`CURRENT_STACK`): its runs from the moment that count was fixed, before any of them ran
(the runs of the same code seen before then are not in it).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from simulator.atomic import atomic_write_text

OVERHEAD_LEDGER = "serve_overhead.csv"
GOAL_P99_MS = 20.0
REFERENCE_QPS = 100
STOLEN_LIMIT_PCT = 5.0  # at or above: the VM did not give the run its 2 cores
# (the change that made the stack as it is, the UTC from which its runs count)
CURRENT_STACK = ("session 36's (Serve's 10 s health check, no Ray metrics)", "2026-12-06 14:10")


@dataclass(frozen=True)
class OverheadRun:
    """One run of the benchmark; NaN where a number was not recorded."""

    session: int
    utc: str  # "YYYY-MM-DD HH:MM" when appended by the benchmark, "HH:MM" in transcribed rows
    overhead_p50_ms: float
    overhead_p99_ms: float
    max_qps: float
    stolen_pct: float
    cpu_ms_per_query: float
    source: str = ""  # where a transcribed row's numbers are written
    note: str = ""


COLUMNS = tuple(OverheadRun.__dataclass_fields__)
NUMBER_COLUMNS = (
    "session",
    "overhead_p50_ms",
    "overhead_p99_ms",
    "max_qps",
    "stolen_pct",
    "cpu_ms_per_query",
)
REQUIRED_COLUMNS = ("session", "overhead_p99_ms")  # the others may be empty: not recorded
WHOLE_COLUMNS = ("session", "max_qps")  # written as whole numbers


class LedgerError(ValueError):
    """The ledger file is malformed (one line, naming the problem)."""


def read_overhead_ledger(path: Path) -> pd.DataFrame:
    """The ledger's rows, checked: its columns, a session and a p99 in every row, and every
    number a number (whole where it counts)."""
    try:
        table = pd.read_csv(path, dtype={"utc": str, "source": str, "note": str})
    except (OSError, ValueError) as exc:
        raise LedgerError(f"{path}: cannot read the overhead ledger ({exc})") from None
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise LedgerError(f"{path}: the overhead ledger lacks columns {', '.join(missing)}")
    for column in NUMBER_COLUMNS:
        text, values = table[column], pd.to_numeric(table[column], errors="coerce")
        whole = column in WHOLE_COLUMNS
        if column in REQUIRED_COLUMNS:
            _refuse_rows(path, column, text.isna(), "is missing")
        not_number = values.isna() | (whole & (values != values.round()))
        _refuse_rows(path, column, text.notna() & not_number, f"is not a{' whole' * whole} number")
        table[column] = values.astype("Int64") if whole else values
    return table


def _refuse_rows(path: Path, column: str, rows: pd.Series, problem: str) -> None:
    """A LedgerError naming the first of `rows` (a mask) by its line in the file."""
    if rows.any():
        line = int(rows.to_numpy().argmax()) + 2  # the header is line 1
        raise LedgerError(f"{path}, line {line}: {column} {problem}")


def check_ledger(path: Path) -> None:
    """A LedgerError unless a run can be appended at `path`: a well-formed ledger there, or no
    file yet in a folder that exists."""
    if path.is_file():
        read_overhead_ledger(path)
    elif path.exists():
        raise LedgerError(f"{path}: not a file, so no overhead ledger")
    elif not path.parent.is_dir():
        raise LedgerError(f"{path}: its folder {path.parent} does not exist")


def append_overhead_run(path: Path, run: OverheadRun) -> None:
    """Add `run` as the ledger's last row (the file is made if absent; written atomically)."""
    table = read_overhead_ledger(path) if path.is_file() else pd.DataFrame(columns=COLUMNS)
    row = pd.DataFrame([asdict(run)], columns=COLUMNS)
    table = row if table.empty else pd.concat([table, row], ignore_index=True)
    for column in WHOLE_COLUMNS:  # the new row's NaN would turn the column to floats
        table[column] = pd.to_numeric(table[column]).astype("Int64")
    atomic_write_text(path, table.to_csv(index=False, lineterminator="\n"))


def on_two_cores(ledger: pd.DataFrame) -> pd.Series:
    """Which runs had their 2 cores: stolen share below the limit, or not recorded."""
    stolen = pd.to_numeric(ledger["stolen_pct"], errors="coerce")
    return ~(stolen >= STOLEN_LIMIT_PCT)


def run_met(ledger: pd.DataFrame) -> pd.Series:
    """p99 within the goal at the reference rate, and (where recorded) every query answered
    there: max_qps, the highest rate meeting both, not below the reference."""
    max_qps = pd.to_numeric(ledger["max_qps"], errors="coerce").astype(float)
    p99_ms = pd.to_numeric(ledger["overhead_p99_ms"]).astype(float)
    return (p99_ms <= GOAL_P99_MS) & ~(max_qps < REFERENCE_QPS)


def current_stack_runs(ledger: pd.DataFrame) -> pd.Series:
    """Which runs are the current stack's: appended at or after `CURRENT_STACK`'s time (a row
    with a time of day alone, or none, is older)."""
    utc = pd.to_datetime(ledger["utc"], format="%Y-%m-%d %H:%M", errors="coerce")
    return (utc >= pd.Timestamp(CURRENT_STACK[1])).fillna(False).astype(bool)


def overhead_verdict(ledger: pd.DataFrame) -> tuple[bool, str]:
    """(met, evidence): met when every run on 2 cores met the goal; the evidence counts them,
    all runs and the current stack's runs on 2 cores, and names each miss on 2 cores."""
    fair, met = on_two_cores(ledger), run_met(ledger)
    misses = ledger[fair & ~met]
    current = fair & current_stack_runs(ledger)
    change, since = CURRENT_STACK
    evidence = (
        f"runs on 2 cores (under {STOLEN_LIMIT_PCT:g}% of the CPU stolen, or not recorded) "
        f"meeting it: {int((fair & met).sum())} of {int(fair.sum())}; all runs: "
        f"{int(met.sum())} of {len(ledger)}; the stack since {change} change, its runs on 2 "
        f"cores from {since} UTC (counted from then, before they ran): "
        f"{int((current & met).sum())} of {int(current.sum())}"
    )
    if len(misses):
        evidence += "; missed on 2 cores: " + ", ".join(
            f"session {int(r.session)}{' ' + _text(r.utc) if _text(r.utc) else ''} p99 "
            f"{r.overhead_p99_ms:.1f} ms "
            f"({_stolen_text(r.stolen_pct)})"
            for r in misses.itertuples()
        )
    return bool(len(ledger)) and misses.empty, evidence


def _stolen_text(stolen_pct: float) -> str:
    return "stolen share not recorded" if math.isnan(stolen_pct) else f"{stolen_pct:g}% stolen"


def overhead_glance_row(path: Path) -> str:
    """The goal's row of the validation report's glance, from the ledger at `path`."""
    goal = (
        f"serving path's overhead: p99 <= {GOAL_P99_MS:g} ms per query at {REFERENCE_QPS} QPS "
        "on 2 cores"
    )
    if not path.is_file():
        return f"| {goal} | not run | no ledger (`benchmarks/serve_overhead.py --ledger`) |"
    met, evidence = overhead_verdict(read_overhead_ledger(path))
    return f"| {goal} | {'met' if met else 'not met'} | {evidence} |"


def overhead_ledger_lines(path: Path) -> list[str]:
    """The ledger as a report section: the rule, then one row per run."""
    if not path.is_file():
        return []
    ledger = read_overhead_ledger(path)
    fair, met = on_two_cores(ledger), run_met(ledger)
    lines = [
        f"## The serving path's overhead runs (generated from `results/validation/{path.name}`)",
        "",
        f"`benchmarks/serve_overhead.py` on the default stack: overhead at {REFERENCE_QPS} QPS, "
        f"the goal p99 <= {GOAL_P99_MS:g} ms with every query answered. A run is on 2 cores "
        f"unless at least {STOLEN_LIMIT_PCT:g}% of the CPU was stolen during that replay (not "
        "recorded: on 2 cores); the goal is met when every run on 2 cores met it (rule fixed "
        "in session 33, before that session's runs). Rows before session 33 are transcribed "
        "from the notes named in `source`. The glance also counts the stack since "
        f"{CURRENT_STACK[0]} change on its runs from {CURRENT_STACK[1]} UTC, a count fixed "
        "before them.",
        "",
        "| session | UTC | p50 ms | p99 ms | max_qps | stolen % | CPU ms per query | on 2 cores "
        "| met | note |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row, on_cores, ok in zip(ledger.itertuples(), fair, met):
        cells = [
            str(int(row.session)),
            _text(row.utc),
            *(_number(v) for v in (row.overhead_p50_ms, row.overhead_p99_ms)),
            _number(row.max_qps, "{:.0f}"),
            *(_number(v) for v in (row.stolen_pct, row.cpu_ms_per_query)),
            "yes" if on_cores else "no",
            "yes" if ok else "no",
            _text(row.note),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return [*lines, ""]


def _number(value: float, form: str = "{:.1f}") -> str:
    return "" if pd.isna(value) else form.format(value)


def _text(value: object) -> str:
    """A cell of the report's table: one line, no column separator."""
    return "" if pd.isna(value) else " ".join(str(value).split()).replace("|", "/")
