"""Where a validation's latency error comes from: the real runs and the simulation compared per
query class (the models a query visited: its first model alone, bypassed to the heavy one, or
escalated from the first to the final one) and per part of its latency (the wait before its
first batch started, that batch's service, and the rest: escalation, the hops back).

A p50 over all queries mixes classes whose latencies differ several-fold; when it falls between
two of them a small shift of the mix or of one class moves it far (`validate`'s `real_level`
says how far in probability). This table shows which class and which part moved. The note
gives each part's mean (the parts' means add up to the latency's; a class's median can flip
between batch sizes on a small shift, as the overall one between classes); the table has the
p50s too.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

CLASSES_FILE = "classes.csv"
PARTS = {  # part -> (end column, start column) of the seconds it spans
    "latency": ("completion_s", "arrival_s"),
    "wait": ("start_s", "arrival_s"),
    "first_service": ("first_done_s", "start_s"),
}
SPANS = tuple(column for span in PARTS.values() for column in span)
NEEDED = tuple(
    dict.fromkeys(("first_model", "final_model", "bypassed", "escalated", "outcome", *SPANS))
)


def query_class(queries: pd.DataFrame) -> pd.Series:
    """Each query's class label: `first`, `first (bypassed)` or `first->final` (escalated)."""
    first = queries["first_model"].astype(str)
    final = queries["final_model"].astype(str)
    label = first.where(~queries["bypassed"].astype(bool), first + " (bypassed)")
    return label.where(~queries["escalated"].astype(bool), first + "->" + final)


def query_classes_table(real: list[pd.DataFrame], sim: pd.DataFrame) -> pd.DataFrame:
    """Per class (by its real share, largest first): its share of the queries that were not
    dropped, real (pooled over the runs) and simulated, and the mean and the p50 of each part
    (PARTS) real and simulated. Empty when a run lacks a column it needs (runs from before
    they were recorded)."""
    runs = [*real, sim]
    if any(c not in q.columns for q in runs for c in NEEDED):
        return pd.DataFrame()
    kept = [q[q["outcome"].astype(str) != "drop"] for q in runs]
    pooled_real = pd.concat(kept[:-1], ignore_index=True)
    sides = {"real": pooled_real, "sim": kept[-1]}
    labels = {side: query_class(q) for side, q in sides.items()}
    order = labels["real"].value_counts().index.tolist()
    order += [c for c in labels["sim"].unique() if c not in order]
    rows = []
    for name in order:
        row: dict[str, object] = {"class": name}
        for side, q in sides.items():
            members = q[(labels[side] == name).to_numpy()]
            row[f"{side}_share"] = len(members) / len(q) if len(q) else np.nan
            for part, (end, start) in PARTS.items():
                seconds = (members[end] - members[start]).to_numpy(np.float64)
                empty = len(seconds) == 0
                row[f"{side}_{part}_mean_s"] = np.nan if empty else float(np.mean(seconds))
                row[f"{side}_{part}_p50_s"] = np.nan if empty else float(np.median(seconds))
        rows.append(row)
    return pd.DataFrame(rows)


def query_classes_text(table: pd.DataFrame) -> str:
    """The fidelity note's sentence on `query_classes_table`."""
    if table.empty:
        return ""

    def pair(row, part: str) -> str:
        real, sim = row[f"real_{part}_mean_s"], row[f"sim_{part}_mean_s"]
        return f"{real * 1e3:.1f} vs {sim * 1e3:.1f} ms"

    per_class = "; ".join(
        f"{r['class']} {r['real_share']:.0%} real, {r['sim_share']:.0%} simulated: "
        f"{pair(r, 'latency')} (wait {pair(r, 'wait')}, first batch {pair(r, 'first_service')})"
        for _, r in table.iterrows()
    )
    return (
        f"By query class (DIR/{CLASSES_FILE}, with the p50s; the real runs pooled vs DIR/sim, "
        "the mean latency, of it the wait before the first batch and that batch's service): "
        f"{per_class}."
    )
