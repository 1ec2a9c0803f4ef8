"""The simulation at either end of the latency profile's rounds' spread (`validate
--profile-rounds`).

`profile latency --rounds` times each batch size in rounds spread over minutes and reports the
p10 and p90 of the rounds' medians: how far the machine's speed moved while it was profiled.
`rounds_bundles` gives the bundle with every latency row at its p10 ("fast") and at its p90
("slow"), in the bundle's monotone shape, so a validation can show the simulated metrics the
profile's own spread allows next to the error it judges on the p50 profile.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from profiler.latency import (
    ROUNDS_ENDS,
    bundle_latency_rows,
    read_latency_profile,
    rounds_latency_rows,
)
from serving.service_times import with_latency_table
from simulator.bundle import Bundle
from simulator.errors import InputError


def rounds_bundles(folder: str | Path, bundle: Bundle) -> dict[str, Bundle]:
    """{"fast": bundle, "slow": bundle} from the timing tables of the bundle's models in
    `folder` (`profile latency` writes <model>.csv there: a work folder's latency/). The tables
    must be the ones the bundle's profile was built from, each timed in two rounds or more."""
    flag = f"--profile-rounds {str(folder)!r}"
    tables = []
    for name in bundle.model_names:
        try:
            table, _ = read_latency_profile(Path(folder) / f"{name}.csv")
        except InputError as exc:
            raise InputError(f"{flag}: {exc}") from None
        if (table["feasible"].astype(bool) & (table["n_rounds"] < 2)).any():
            raise InputError(
                f"{flag}: model {name} was timed in one round: no spread (profile latency "
                "--rounds 2 or more)"
            )
        tables.append(table)
    timed = pd.concat(tables, ignore_index=True)
    used = bundle_latency_rows(timed)[["model", "batch_size", "latency_p50_s"]]
    used = used.rename(columns={"latency_p50_s": "profiled_p50_s"})
    bundles = {}
    for end in ROUNDS_ENDS:
        rows = rounds_latency_rows(timed, end).merge(used, on=["model", "batch_size"], how="left")
        bundles[end] = with_latency_table(bundle, rows, flag)
    return bundles
