"""Agreement of extracted router features with a reference feature table (e.g. the HADIS
artifact's `router/prompt_features.csv`) and of the router scores built from them.

Per feature: `exact_share` (prompts with the same count), `mean_abs_diff` and `spearman` (rank
correlation, average ranks for ties; NaN when a side is constant). Router score (`router_scores`:
z-scores over each side's own prompts, dotted with the weights): `spearman`, and for each
heavy_share h, `same_side_top_<100h>` = the share of prompts on the same side of the
(1 - h)-quantile cut on both sides (score >= cut -> heavy, `simulator.cascade.router_threshold`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from profiler.prompt_features import HADIS_ROUTER_WEIGHTS, router_scores
from simulator.bundle import ROUTER_FEATURES
from simulator.cascade import router_threshold
from simulator.csv_input import read_csv_table
from simulator.errors import InputError

HEAVY_SHARES = (0.2, 0.5)


class FeatureAgreementError(InputError):
    """A reference feature table that cannot be read or does not fit the compared prompts."""


def read_reference_features(path: str | Path) -> pd.DataFrame:
    """A `prompt` + 8 feature table (the artifact's `prompt_features.csv` format)."""
    table = read_csv_table(path, FeatureAgreementError, keep_default_na=False)
    for column in ("prompt", *ROUTER_FEATURES):
        if column not in table.columns:
            raise FeatureAgreementError(f"{path}: column {column}: missing")
    for column in ROUTER_FEATURES:
        values = pd.to_numeric(table[column], errors="coerce")
        bad = np.flatnonzero(values.isna().to_numpy() | (values % 1 != 0).to_numpy())
        if bad.size:
            raise FeatureAgreementError(
                f"{path}: line {bad[0] + 2}: column {column}: not an integer"
            )
    return table


def _ascii(text: str) -> str:
    return text.encode("ascii", "ignore").decode()


def check_same_prompts(texts: Sequence[str], reference: Sequence[str], source: str) -> None:
    """The reference rows are the prompts of `texts`, in order. Non-ASCII characters are ignored:
    the artifact read its prompt file with them dropped."""
    if len(texts) != len(reference):
        raise FeatureAgreementError(f"{source}: {len(reference)} rows for {len(texts)} prompts")
    for i, (ours, theirs) in enumerate(zip(texts, reference)):
        if _ascii(ours) != _ascii(theirs):
            raise FeatureAgreementError(
                f"{source}: line {i + 2}: prompt {theirs!r} is not prompt {i + 1} {ours!r}"
            )


def _checked_pair(features, reference) -> tuple[np.ndarray, np.ndarray]:
    ours = np.asarray(features, dtype=np.float64)
    theirs = np.asarray(reference, dtype=np.float64)
    if ours.ndim != 2 or ours.shape != theirs.shape or ours.shape[1] != len(ROUTER_FEATURES):
        raise FeatureAgreementError(
            f"features {ours.shape} vs reference {theirs.shape}: expected the same (n, "
            f"{len(ROUTER_FEATURES)})"
        )
    if ours.shape[0] < 2:
        raise FeatureAgreementError("feature agreement: need at least 2 prompts")
    return ours, theirs


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation (average ranks for ties); NaN when a side is constant."""
    ra = pd.Series(a).rank().to_numpy()
    rb = pd.Series(b).rank().to_numpy()
    if np.ptp(ra) == 0 or np.ptp(rb) == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def feature_agreement(features: np.ndarray, reference: np.ndarray | pd.DataFrame) -> pd.DataFrame:
    """Per feature (index `ROUTER_FEATURES`): exact_share, mean_abs_diff, spearman."""
    if isinstance(reference, pd.DataFrame):
        reference = reference[list(ROUTER_FEATURES)].to_numpy()
    ours, theirs = _checked_pair(features, reference)
    return pd.DataFrame(
        {
            "exact_share": (ours == theirs).mean(axis=0),
            "mean_abs_diff": np.abs(ours - theirs).mean(axis=0),
            "spearman": [spearman(ours[:, j], theirs[:, j]) for j in range(ours.shape[1])],
        },
        index=pd.Index(ROUTER_FEATURES, name="feature"),
    )


def router_agreement(
    features: np.ndarray,
    reference: np.ndarray | pd.DataFrame,
    weights: Sequence[float] = HADIS_ROUTER_WEIGHTS,
    heavy_shares: Sequence[float] = HEAVY_SHARES,
) -> pd.Series:
    """Router-score agreement: spearman and `same_side_top_<100h>` per heavy_share h."""
    if isinstance(reference, pd.DataFrame):
        reference = reference[list(ROUTER_FEATURES)].to_numpy()
    ours, theirs = _checked_pair(features, reference)
    ours_score, theirs_score = router_scores(ours, weights), router_scores(theirs, weights)
    result = {"spearman": spearman(ours_score, theirs_score)}
    for share in heavy_shares:
        if not 0.0 < share < 1.0:
            raise FeatureAgreementError(f"heavy_share {share}: expected in (0, 1)")
        ours_heavy = ours_score >= router_threshold(ours_score, share)
        theirs_heavy = theirs_score >= router_threshold(theirs_score, share)
        result[f"same_side_top_{round(100 * share)}"] = float((ours_heavy == theirs_heavy).mean())
    return pd.Series(result, name="router_score")
