"""Service times measured on the serving path, as a bundle's latency profile.

A real run's `batches.csv` (`serving.loadgen.served_batches`) holds every batch its workers
served: model, size, service seconds, and whether the discriminator's cost was charged. The
simulator charges a batch of b on model m `latency[m][b] x time_scale` plus the
discriminator's cost (`simulator.cluster`: `disc_cost_s x time_scale` per judged image, or per
batch of any model with `disc_cost_per=batch`). `served_latency` inverts that: per model and
profiled batch size with at least MIN_BATCHES served batches, the median served model time
over the profile's p50 is that size's ratio; a profiled size with fewer takes the ratio of the
nearest size that has one (the smaller on a tie), a model never served keeps its profile. The
p50, p95 and (where the bundle has it) p05 are scaled by the ratio, so the shape is the
profile's; the p50 then rises to the largest at any smaller size, as a bundle's may not fall
with the batch size (the p95 to at least the p50, the p05 at most), and `ratio` reports the
one in effect. `served_p95_s` and `served_p05_s` are the served batches' own quantiles, for a
size with at least MIN_TAIL_BATCHES of them (NaN otherwise); `served_tails` puts them in place
of the profile's shape (a named choice: `validate` reports both). `served_cpu_p50_s` is the
median CPU time the batches of a row's own size took in their replica's thread (`cpu_s`, less
the same charge; NaN where not measured): the part of the served time that is compute rather
than waiting for a core. `served_preemptions_p50` is
the median number of times the kernel preempted that thread during one of those batches
(`preemptions`; NaN where not counted): how often the serving stack's other threads took its
core, each time taking some of its caches with it.

Used by `serving.validate` to tell the profile's error from the rest of the simulator's: the
tiny diffusers replicas serve slower than `profile latency` measures them alone (they share two
cores with the serving stack). Measured in one experiment (its DIR/served_latency.csv), the
served profile predicts another (`compared_latency`, `validate --compare-served-latency`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from serving.fidelity import read_real_run
from simulator.bundle import P05_LATENCY_COLUMN, REQUIRED_COLUMNS, Bundle, nearest_batch_size
from simulator.config import SimConfig
from simulator.csv_input import read_csv_table
from simulator.errors import InputError
from simulator.json_input import read_json_object

MIN_BATCHES = 5
# a served p95 (p05) from n batches rests on about n/20 of them beyond it: two at least
MIN_TAIL_BATCHES = 40
SERVED_TAIL_COLUMNS = {"latency_p95_s": "served_p95_s", P05_LATENCY_COLUMN: "served_p05_s"}
BATCHES_FILE = "batches.csv"
BATCH_COLUMNS_REQUIRED = ("worker", "model", "start_s", "service_s", "batch_size", "judged")


def _whole(v: np.ndarray, lo: float) -> np.ndarray:
    return np.isfinite(v) & (v >= lo) & (v == np.round(v))


# (column, what it must be, which values pass given (values, empty)); cpu_s and preemptions
# are NaN where the engine does not measure them (the emulated backend)
BATCH_NUMBER_RULES = (
    ("worker", "an integer >= 0", lambda v, empty: _whole(v, 0)),
    ("batch_size", "an integer >= 1", lambda v, empty: _whole(v, 1)),
    ("start_s", "a finite number", lambda v, empty: np.isfinite(v)),
    ("service_s", "a finite number > 0", lambda v, empty: np.isfinite(v) & (v > 0)),
    (
        "cpu_s",
        "a finite number >= 0 or empty",
        lambda v, empty: empty | (np.isfinite(v) & (v >= 0)),
    ),
    ("preemptions", "an integer >= 0 or empty", lambda v, empty: empty | _whole(v, 0)),
)


def read_batches(run_dirs: list[Path], model_names: Sequence[str]) -> list[pd.DataFrame] | None:
    """Each run folder's served batches (`read_batches_file`); None when one has none recorded
    (a run made before the serving path recorded them)."""
    if not all((d / BATCHES_FILE).is_file() for d in run_dirs):
        return None
    return [read_batches_file(d / BATCHES_FILE, model_names) for d in run_dirs]


def read_batches_file(path: Path, model_names: Sequence[str] | None) -> pd.DataFrame:
    """A run's `batches.csv`, checked row by row: a worker slot and a batch size that are
    integers (>= 0, >= 1), a model of `model_names` (None: any name), a finite start, a
    service time > 0, `judged` True or False, and where recorded (older runs lack them) CPU
    seconds >= 0 and a preemption count >= 0 or empty (not measured); InputError naming the
    line and column."""
    table = read_csv_table(path, dtype={"model": str, "judged": str})
    missing = [c for c in BATCH_COLUMNS_REQUIRED if c not in table.columns]
    if missing:
        raise InputError(f"{path}: column {missing[0]}: missing")

    def refuse(bad: np.ndarray, column: str, rule: str) -> None:
        if bad.any():
            i = int(np.argmax(bad))
            raise InputError(
                f"{path}: line {i + 2}: {column}: {str(table[column].iloc[i])!r} must be {rule}"
            )

    for column, rule, ok in BATCH_NUMBER_RULES:
        if column in table.columns:
            values = pd.to_numeric(table[column], errors="coerce").to_numpy(np.float64)
            refuse(~ok(values, table[column].isna().to_numpy()), column, rule)
            table[column] = values
    if model_names is not None:
        refuse(~table["model"].isin(model_names).to_numpy(), "model", "a model of the bundle")
    judged = table["judged"].map({"True": True, "False": False})
    refuse(judged.isna().to_numpy(), "judged", "True or False")
    return table.assign(judged=judged.astype(bool))


def engine_measure(batches: pd.DataFrame, column: str) -> np.ndarray:
    """A column the engines measure per batch (`cpu_s`, `preemptions`) as floats: NaN where
    not measured, and throughout for runs made before it was recorded."""
    if column not in batches:
        return np.full(len(batches), np.nan)
    return batches[column].to_numpy(dtype=np.float64)


def discriminator_charge_s(
    batches: pd.DataFrame, config: SimConfig, uses_discriminator: bool
) -> np.ndarray:
    """Per batch, the seconds the simulator adds to its latency for the discriminator."""
    if not uses_discriminator:
        return np.zeros(len(batches))
    disc_s = config.disc_cost_s * config.time_scale
    if config.disc_cost_per == "batch":
        return np.full(len(batches), disc_s)
    judged = batches["judged"].astype(bool).to_numpy()
    return disc_s * batches["batch_size"].to_numpy(dtype=np.float64) * judged


def served_model_s(
    batches: pd.DataFrame, config: SimConfig, uses_discriminator: bool
) -> np.ndarray:
    """Per batch, the seconds the simulator's latency table stands for: its served time less
    the discriminator's charge, at time scale 1."""
    charge_s = discriminator_charge_s(batches, config, uses_discriminator)
    return (batches["service_s"].to_numpy(dtype=np.float64) - charge_s) / config.time_scale


def served_latency_table(
    bundle: Bundle, batches: pd.DataFrame, config: SimConfig, uses_discriminator: bool
) -> pd.DataFrame:
    """The bundle's latency rows with the served p50 and p95 (and p05; see the module
    docstring) and, per row, `profiled_p50_s`, the `ratio` applied, `served_batches` (those of
    its size), `served_cpu_p50_s` and `served_preemptions_p50`. Without the bundle's latency
    after idle: a served batch's time is after the idle it had."""
    charge_s = discriminator_charge_s(batches, config, uses_discriminator)
    model_s = served_model_s(batches, config, uses_discriminator)
    model_cpu_s = (engine_measure(batches, "cpu_s") - charge_s) / config.time_scale
    preempted = engine_measure(batches, "preemptions")
    served = batches.assign(model_s=model_s, model_cpu_s=model_cpu_s, preempted=preempted)
    by_size = served.groupby(["model", "batch_size"])
    counts = by_size.size()
    medians, cpu_medians = by_size["model_s"].median(), by_size["model_cpu_s"].median()
    tails = {q: by_size["model_s"].quantile(q) for q in (0.05, 0.95)}
    preempted_medians = by_size["preempted"].median()
    rows = []
    for name in bundle.model_names:
        profile = bundle.latency[bundle.latency["model"] == name].sort_values("batch_size")
        sizes = profile["batch_size"].to_numpy(dtype=np.int64)
        p50 = profile["latency_p50_s"].to_numpy(dtype=np.float64)
        n = np.array([int(counts.get((name, b), 0)) for b in sizes])
        measured = {
            int(b): medians[(name, b)] / p for b, p, k in zip(sizes, p50, n) if k >= MIN_BATCHES
        }
        ratio = np.array([_nearest(measured, int(b)) for b in sizes])
        served_p50 = np.maximum.accumulate(p50 * ratio)  # a bundle's p50 never falls with b
        p95 = profile["latency_p95_s"].to_numpy(dtype=np.float64) * ratio
        p05 = profile.get(P05_LATENCY_COLUMN)
        p05 = None if p05 is None else p05.to_numpy(dtype=np.float64) * ratio
        for i, ((_, row), p, q, k) in enumerate(zip(profile.iterrows(), served_p50, p95, n)):
            shape = {} if p05 is None else {P05_LATENCY_COLUMN: min(p05[i], p)}
            key = (name, row["batch_size"])
            own = {
                f"served_p{round(q * 100):02d}_s": tail[key] if k >= MIN_TAIL_BATCHES else np.nan
                for q, tail in tails.items()
            }
            rows.append(
                {
                    **row[list(REQUIRED_COLUMNS["latency"])].to_dict(),
                    "latency_p50_s": p,
                    "latency_p95_s": max(q, p),
                    **shape,
                    "profiled_p50_s": row["latency_p50_s"],
                    "ratio": p / row["latency_p50_s"],
                    "served_batches": int(k),
                    "served_cpu_p50_s": float(cpu_medians.get(key, np.nan)),
                    "served_preemptions_p50": float(preempted_medians.get(key, np.nan)),
                    **own,
                }
            )
    return pd.DataFrame(rows)


def served_tails(table: pd.DataFrame) -> pd.DataFrame:
    """`table` (`served_latency_table`'s) with each row's p95 and p05 the served batches' own
    where it has them (`served_p95_s`, `served_p05_s`), kept on their side of the p50; rows
    without keep the profile's shape."""
    out = table.copy()
    for column, served in SERVED_TAIL_COLUMNS.items():
        if column in out.columns and served in out.columns:
            own = out[served].notna()
            bound = np.maximum if column == "latency_p95_s" else np.minimum
            out.loc[own, column] = bound(out.loc[own, served], out.loc[own, "latency_p50_s"])
    return out


def with_served_latency(
    bundle: Bundle,
    batches: pd.DataFrame,
    config: SimConfig,
    uses_discriminator: bool,
    tails: bool = False,
) -> Bundle:
    """`bundle` with the latency profile its batches were served in (`served_latency_table`;
    with `tails`, the served batches' own p95 and p05, `served_tails`)."""
    table = served_latency_table(bundle, batches, config, uses_discriminator)
    if tails:
        table = served_tails(table)
    return dataclasses.replace(bundle, latency=table[_latency_columns(table)])


def compared_latency(path: str | Path, bundle: Bundle) -> Bundle:
    """`bundle` with the latency profile of another validation's DIR/served_latency.csv
    (`served_latency_table`: service times its runs measured), for the same models and batch
    sizes; the tables are validated as a bundle's."""
    table, flag = _compared_table(path)
    return with_latency_table(bundle, table, flag)


def compared_latency_served_tails(path: str | Path, bundle: Bundle) -> Bundle | None:
    """`compared_latency` with the served batches' own p95 and p05 (`served_tails`); None
    when the file carries none (a profile's latency.csv, an older served_latency.csv)."""
    table, flag = _compared_table(path)
    if "served_p95_s" not in table.columns or table["served_p95_s"].isna().all():
        return None
    return with_latency_table(bundle, served_tails(table), flag)


def _compared_table(path: str | Path) -> tuple[pd.DataFrame, str]:
    flag = f"--compare-served-latency {str(path)!r}"
    if not Path(path).is_file():
        raise InputError(f"{flag}: no such file (a validation's served_latency.csv)")
    return read_csv_table(path, label=flag), flag


def with_latency_table(bundle: Bundle, table: pd.DataFrame, flag: str) -> Bundle:
    """`bundle` with `table` as its latency profile: the same models and batch sizes (and, where
    it has `profiled_p50_s`, measured against the bundle's own profile), validated as a
    bundle's tables; a mismatch is an InputError naming `flag`. The latency after idle is
    `table`'s where it has one, else none (served times: each batch after the idle it had);
    the p05 `table`'s where it has one."""
    from simulator.bundle import IDLE_LATENCY_COLUMNS, BundleError, validate_tables

    columns = _latency_columns(table)
    if any(c in table.columns for c in IDLE_LATENCY_COLUMNS):
        columns += IDLE_LATENCY_COLUMNS
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise InputError(f"{flag}: column {missing[0]} missing")
    key = ["model", "batch_size"]
    if sorted(map(tuple, table[key].astype(str).to_numpy())) != sorted(
        map(tuple, bundle.latency[key].astype(str).to_numpy())
    ):
        raise InputError(f"{flag}: its models and batch sizes are not the bundle's")
    if "profiled_p50_s" in table.columns:
        profiled = bundle.latency.merge(table[[*key, "profiled_p50_s"]], on=key)
        if not np.allclose(profiled["profiled_p50_s"], profiled["latency_p50_s"], rtol=1e-5):
            raise InputError(f"{flag}: measured against another latency profile than the bundle's")
    tables = {
        "models": bundle.models,
        "latency": table[columns],
        "prompts": bundle.prompts,
        "scores": bundle.scores,
        "cascades": bundle.cascades,
    }
    try:
        return validate_tables(bundle.meta, tables, bundle.features)
    except BundleError as exc:
        raise InputError(f"{flag}: {exc}") from None


def _latency_columns(table: pd.DataFrame) -> list[str]:
    """The bundle's latency columns that `table` carries besides the idle ones."""
    columns = list(REQUIRED_COLUMNS["latency"])
    if P05_LATENCY_COLUMN in table.columns:
        columns.append(P05_LATENCY_COLUMN)
    return columns


def _nearest(ratios: dict[int, float], size: int) -> float:
    """The ratio at `size`, else at the nearest size that has one (the smaller on a tie);
    1.0 when none has."""
    if not ratios:
        return 1.0
    return ratios[nearest_batch_size(ratios, size)]


def served_runs(run_dirs: list[Path], bundle_spec: str | None = None) -> tuple[Bundle, dict]:
    """The bundle real runs served (`bundle_spec`, or the one their summaries name) and their
    config.json. The runs must be `t2isim loadgen` runs that recorded their batches, of one
    bundle (by content hash), policy and settings; InputError naming the run otherwise."""
    from experiments.inputs import resolve_bundle

    if not run_dirs:
        raise InputError("give at least one real run folder")
    records = []
    for d in run_dirs:
        files = [d / name for name in ("summary.json", "config.json", BATCHES_FILE)]
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise InputError(
                f"{d}: no {missing[0]}; expected a run folder that `t2isim loadgen` wrote "
                "(older ones did not record their batches)"
            )
        summary = read_json_object(files[0], keys=("hashes",))
        records.append((summary, read_json_object(files[1], keys=("sim",))))
    first_summary, first_config = records[0]
    for d, (summary, config) in zip(run_dirs, records):
        if summary.get("source") != "serve":
            raise InputError(f"{d}: not a real run (made by {summary.get('source', 'simulate')})")
        same = (
            summary["hashes"]["bundle"] == first_summary["hashes"]["bundle"]
            and config["sim"] == first_config["sim"]
            and config["policy"] == first_config["policy"]
            and config["policy_options"] == first_config["policy_options"]
        )
        if not same:
            raise InputError(
                f"{d}: another bundle, policy or settings than {run_dirs[0]}; give runs of one"
            )
    spec = bundle_spec or first_summary["bundle_source"]
    try:
        bundle = resolve_bundle(spec)
    except InputError as exc:
        if bundle_spec is not None:
            raise
        raise InputError(f"{exc} (the bundle the runs name; give --bundle)") from None
    if bundle.content_hash() != first_summary["hashes"]["bundle"]:
        raise InputError(f"--bundle {spec}: not the bundle the runs served (content hash differs)")
    return bundle, first_config


def served_bundle(
    run_dirs: list[Path], bundle_spec: str | None = None, tails: bool = False, shapes: bool = False
) -> tuple[Bundle, pd.DataFrame]:
    """The bundle real runs served (`served_runs`) with the latency profile their workers
    measured (`with_served_latency` over all their batches; with `tails`, their own p95 and
    p05 where enough were served; with `shapes`, their batches' and hops' measured shapes,
    `serving.served_shapes`), and the table of ratios (`served_latency_table`); its meta
    gains `served_latency` (the runs, MIN_BATCHES, each ratio, whether the tails and the
    shapes are served)."""
    from serving.served_shapes import served_shapes, with_shapes
    from simulator.run import build_policy

    bundle, first_config = served_runs(run_dirs, bundle_spec)
    config = SimConfig(**first_config["sim"])
    policy = build_policy(bundle, first_config["policy"], config, first_config["policy_options"])
    per_run = read_batches(run_dirs, bundle.model_names)
    batches = pd.concat(per_run, ignore_index=True)
    table = served_latency_table(bundle, batches, config, policy.uses_discriminator)
    ratios = {
        name: {str(int(r.batch_size)): round(float(r.ratio), 6) for r in rows.itertuples()}
        for name, rows in table.groupby("model", sort=False)
    }
    meta = {
        **bundle.meta,
        "served_latency": {
            "runs": [str(d) for d in run_dirs],
            "min_batches": MIN_BATCHES,
            "ratio": ratios,
            "served_tails": tails,
            "served_shapes": shapes,
        },
    }
    shaped = served_tails(table) if tails else table
    latency = shaped[_latency_columns(shaped)]  # served: each batch after the idle it had
    served = dataclasses.replace(bundle, meta=meta, latency=latency)
    if shapes:
        queries = [read_real_run(d)[0] for d in run_dirs]
        measured = served_shapes(bundle, per_run, queries, config, policy.uses_discriminator)
        served = with_shapes(served, measured)
    return served, table


PREEMPTION_FIT_COLUMNS = [
    "model",
    "batches",
    "cpu_p50_s",
    "preemptions_p50",
    "slope_s",
    "slope_se_s",
    "intercept_s",
    "intercept_se_s",
]


def preemption_fit(batches: pd.DataFrame, charge_s: np.ndarray) -> pd.DataFrame:
    """Per model, its batches of one with a CPU time and a preemption count (`batches.csv`):
    the thread CPU less the discriminator's `charge_s` (one per batch), fitted on the count by
    least squares. Columns: model, batches, cpu_p50_s, preemptions_p50, slope_s (CPU seconds
    per preemption) and intercept_s (a batch never preempted), each with its standard error
    (`_se`). A model with fewer than three such batches, or whose counts never vary, has none."""
    cpu_s = engine_measure(batches, "cpu_s") - charge_s
    count = engine_measure(batches, "preemptions")
    kept = (batches["batch_size"].to_numpy() == 1) & np.isfinite(cpu_s) & np.isfinite(count)
    rows = []
    for model in sorted(set(batches.loc[kept, "model"])):
        own = kept & (batches["model"].to_numpy() == model)
        x, y = count[own], cpu_s[own]
        if len(x) < 3 or np.ptp(x) == 0:
            continue
        design = np.column_stack([np.ones_like(x), x])
        coef = np.linalg.lstsq(design, y, rcond=None)[0]
        residual = y - design @ coef
        covariance = residual @ residual / (len(x) - 2) * np.linalg.inv(design.T @ design)
        se = np.sqrt(np.diag(covariance))
        rows.append(
            {
                "model": model,
                "batches": len(x),
                "cpu_p50_s": float(np.median(y)),
                "preemptions_p50": float(np.median(x)),
                "slope_s": float(coef[1]),
                "slope_se_s": float(se[1]),
                "intercept_s": float(coef[0]),
                "intercept_se_s": float(se[0]),
            }
        )
    return pd.DataFrame(rows, columns=PREEMPTION_FIT_COLUMNS)


SPEED_BIN_S = 10.0  # the machine's speed moved between two states for tens of seconds (session 26)
SPEED_BIN_MIN_BATCHES = 10
SPEED_BIN_COLUMNS = [
    "run",
    "model",
    "bin_start_s",
    "batches",
    "cpu_p50_s",
    "wall_p50_s",
    "preemptions_per_ms",
]


def speed_over_time(
    runs: dict[str, pd.DataFrame], charges_s: dict[str, np.ndarray]
) -> pd.DataFrame:
    """How fast each run's workers computed as it went: per run, model and `SPEED_BIN_S` bin
    of the run (by batch start), its batches of one with a CPU time (at least
    `SPEED_BIN_MIN_BATCHES`): the p50 thread CPU less the discriminator's charge
    (`charges_s[run]`, one per batch), the p50 wall time and the preemptions per ms of wall
    time. A machine whose speed moves shows as CPU moving between bins; preemptions that only
    follow a batch's length show as a rate that does not."""
    rows = []
    for run, batches in runs.items():
        cpu_s = engine_measure(batches, "cpu_s") - charges_s[run]
        count = engine_measure(batches, "preemptions")
        kept = (batches["batch_size"].to_numpy() == 1) & np.isfinite(cpu_s)
        table = batches.loc[kept, ["model", "start_s", "service_s"]].assign(
            cpu_s=cpu_s[kept], preemptions=count[kept]
        )
        table["bin"] = np.floor(table["start_s"] / SPEED_BIN_S)
        for (model, b), rows_in in table.groupby(["model", "bin"], sort=True):
            if len(rows_in) < SPEED_BIN_MIN_BATCHES:
                continue
            wall_ms = rows_in["service_s"].sum() * 1e3
            rows.append(
                {
                    "run": run,
                    "model": model,
                    "bin_start_s": b * SPEED_BIN_S,
                    "batches": len(rows_in),
                    "cpu_p50_s": float(rows_in["cpu_s"].median()),
                    "wall_p50_s": float(rows_in["service_s"].median()),
                    "preemptions_per_ms": float(rows_in["preemptions"].sum() / wall_ms)
                    if rows_in["preemptions"].notna().all()
                    else math.nan,
                }
            )
    return pd.DataFrame(rows, columns=SPEED_BIN_COLUMNS)
