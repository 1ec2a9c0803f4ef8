"""Out-of-sample error of the FID estimators of `simulator.metrics`, measured on the FIDs the
HADIS artifact measured on real images.

Estimators (the `fid_method` of a run's summary):

* ``exact`` (`fid_exact`): the default bundle's generative model (`simulator.default_bundle`),
  whose FID parameters are a least-squares fit to the artifact's cascade tables;
* ``table`` (`fid_table`): the bundle's cascade table interpolated at the realised ratios for a
  two-model cascade, the share-weighted single-model FIDs (linear blend) for a mix.

Held-out measurements, neither seen by the fit that predicts them:

* ``cascade k-fold``: the artifact's cascade rows that mix two models (hybrid table plus
  discriminator-only table; `K_FOLDS` folds of configurations (pair, r, c), seeded; the rows
  of one configuration stay together). Each fold is predicted from the other folds: ``exact``
  refits the FID parameters (`default_bundle.fit_fid`, the calibration's own fit) with the
  committed discriminator parameters and latent draw; ``table`` interpolates the pair's other
  rows linearly (Delaunay triangles: bilinear's scattered-point twin; the nearest row outside
  their hull). Rows where one model serves every prompt (the model alone: r = 0 and c = 0,
  r = 1 or c = 1) are in every training set: they are the bundle's `fid_alone`. A held-out
  grid point is interpolated across twice the grid step, so the table's error here bounds
  from above its error at a realised ratio inside a full grid's cell.
* ``random mix``: `router/fid/random_eval_k.txt` (k·10% of the prompts to SD3.5-Large-Turbo
  at random, the rest to SD3.5-Large; 30 draws each) and `random.txt` (50/50; 400 draws); the
  measured value is the mean over the draws. ``exact`` predicts from the expected served
  statistics of the split, ``table`` by the linear blend of the two models' FIDs.

`ESTIMATOR_ERROR_PATH` holds the measurement on the artifact (`t2isim bundle fid-error
ARTIFACT --out simulator/data/fid_estimator_error.json`); `estimator_error` reads it: the error
a FID comparison scored by an estimator carries, its mean absolute held-out error on the set
where it does worse (a comparison of policies usually has cascades and mixes both; pooling the
rows would let the 648 cascade rows hide the 10 mixes).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.interpolate import NearestNDInterpolator
from scipy.spatial import Delaunay, QhullError

from simulator import default_bundle as gen
from simulator.artifact import ARTIFACT_SOURCE, HADIS_MODELS, ArtifactError
from simulator.errors import InputError

ESTIMATORS = ("exact", "table")
SETS = ("cascade k-fold", "random mix")
K_FOLDS = 5
FOLD_SEED = 0
ERROR_STATISTIC = "mean_abs_fid"  # the summary column `estimator_error` takes (worst set)
MIX_LIGHT, MIX_HEAVY = 1, 3  # artifact model indices of the random mixes (light share k·10%)
RANDOM_EVAL_FILE = "router/fid/random_eval_{}.txt"
RANDOM_HALF_FILE = "router/fid/random.txt"
ESTIMATOR_ERROR_PATH = Path(__file__).with_name("data") / "fid_estimator_error.json"


class EstimatorError(InputError):
    pass


# ----------------------------------------------------------------------------- measurements


def _read_draws(root: Path, relative: str) -> np.ndarray:
    path = Path(root) / relative
    if not path.is_file():
        raise ArtifactError(f"{path}: missing artifact file")
    values = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
        try:
            value = float(line)
        except ValueError:
            value = float("nan")
        if not np.isfinite(value) or value <= 0:
            raise ArtifactError(f"{path}: line {i + 1}: {line!r} is not a positive FID")
        values.append(value)
    if not values:
        raise ArtifactError(f"{path}: no FID values")
    return np.asarray(values)


def read_random_mixes(root: Path) -> pd.DataFrame:
    """The artifact's random-routing FIDs: one row per file (light_share, n_draws, fid = mean
    over the draws, fid_sd = their standard deviation, file)."""
    files = [(k / 10, RANDOM_EVAL_FILE.format(k)) for k in range(1, 10)]
    rows = []
    for share, relative in [*files, (0.5, RANDOM_HALF_FILE)]:
        draws = _read_draws(root, relative)
        sd = float(draws.std(ddof=1)) if len(draws) > 1 else 0.0
        rows.append((share, len(draws), float(draws.mean()), sd, relative))
    return pd.DataFrame(rows, columns=["light_share", "n_draws", "fid", "fid_sd", "file"])


def with_folds(
    rows: pd.DataFrame, pair: tuple[str, str], k: int = K_FOLDS, seed: int = FOLD_SEED
) -> pd.DataFrame:
    """Cascade rows with ``alone`` (one model serves every prompt: r = c = 0, r = 1 or c = 1)
    and ``fold`` (-1 for those rows, else 0..k-1, one per configuration (pair, r, c), seeded)."""
    if k < 2:
        raise EstimatorError(f"k-fold: k = {k}; allowed: an integer >= 2")
    rows = rows.reset_index(drop=True)
    r, c = rows["router_ratio"], rows["disc_ratio"]
    alone = (((r == 0) & (c == 0)) | (r == 1) | (c == 1)).to_numpy()
    config = list(zip(rows[pair[0]], rows[pair[1]], r, c))
    mixing = sorted({key for key, a in zip(config, alone) if not a})
    order = np.random.default_rng(seed).permutation(len(mixing))
    fold_of = {key: int(order[i] % k) for i, key in enumerate(mixing)}
    fold = np.array([-1 if a else fold_of[key] for key, a in zip(config, alone)], dtype=np.int64)
    return rows.assign(alone=alone, fold=fold)


def cascade_targets(root: Path, k: int = K_FOLDS, seed: int = FOLD_SEED) -> pd.DataFrame:
    """The artifact's cascade rows as the calibration fits them, `with_folds`."""
    return with_folds(gen._artifact_targets(Path(root)), ("light_index", "heavy_index"), k, seed)


# ----------------------------------------------------------------------------- estimators


def exact_kfold(targets: pd.DataFrame, params: dict, latents: dict) -> np.ndarray:
    """Held-out prediction of every mixing row (NaN for the single-model rows) by the
    generative model refitted on the other folds."""
    served = gen.cascade_stats(params["disc"], latents, targets)
    fid = targets["fid"].to_numpy()
    weight = targets["weight"].to_numpy()
    predicted = np.full(len(targets), np.nan)
    for fold in sorted(set(targets["fold"]) - {-1}):
        held = (targets["fold"] == fold).to_numpy()
        fitted, _ = gen.fit_fid(served[~held], fid[~held], weight[~held])
        predicted[held] = gen._fid_from_stats(fitted, served[held])
    return predicted


def _linear(points: np.ndarray, values: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Linear interpolation on the Delaunay triangles of `points` (NaN outside their hull, or
    everywhere when they span no triangle)."""
    try:
        tri = Delaunay(points)
    except QhullError:  # fewer than 3 points, or all on one line
        return np.full(len(query), np.nan)
    simplex = tri.find_simplex(query)
    affine = tri.transform[simplex]
    first = np.einsum("ijk,ik->ij", affine[:, :2], query - affine[:, 2])
    weights = np.column_stack([first, 1 - first.sum(axis=1)])
    linear = (values[tri.simplices[simplex]] * weights).sum(axis=1)
    return np.where(simplex >= 0, linear, np.nan)


def table_kfold(
    targets: pd.DataFrame, pair: tuple[str, str] = ("light_index", "heavy_index")
) -> np.ndarray:
    """Held-out prediction of every mixing row (NaN for the single-model rows) by linear
    interpolation over the other folds' rows of its pair (nearest row outside their hull;
    several rows of one configuration: their mean)."""
    predicted = np.full(len(targets), np.nan)
    for _, rows in targets.groupby(list(pair), sort=True):
        for fold in sorted(set(rows["fold"]) - {-1}):
            held = rows["fold"] == fold
            train = rows[~held].groupby(["router_ratio", "disc_ratio"], as_index=False)["fid"]
            train = train.mean()
            points = train[["router_ratio", "disc_ratio"]].to_numpy()
            query = rows.loc[held, ["router_ratio", "disc_ratio"]].to_numpy()
            values = train["fid"].to_numpy()
            nearest = NearestNDInterpolator(points, values)(query)
            linear = _linear(points, values, query)
            predicted[rows.index[held]] = np.where(np.isnan(linear), nearest, linear)
    return predicted


def bundle_table_kfold(
    cascades: pd.DataFrame, k: int = K_FOLDS, seed: int = FOLD_SEED
) -> pd.DataFrame:
    """`table_kfold` on a bundle's own cascade table (light, heavy, router_ratio, disc_ratio,
    fid): the mixing rows with predicted_fid and error_fid (the interpolation error alone;
    the bundle's FIDs are taken as measured)."""
    columns = ["light", "heavy", "router_ratio", "disc_ratio", "fid"]
    rows = with_folds(cascades[columns], ("light", "heavy"), k, seed)
    predicted = table_kfold(rows, ("light", "heavy"))
    mixing = ~rows["alone"].to_numpy()
    return rows[mixing].assign(
        predicted_fid=predicted[mixing], error_fid=predicted[mixing] - rows["fid"][mixing]
    )


def exact_random_mix(shares: np.ndarray, params: dict, latents: dict) -> np.ndarray:
    """Generative-model FID of routing a share of the prompts to MIX_LIGHT at random and the
    rest to MIX_HEAVY: the expected served statistics (every prompt split by the shares)."""
    n_prompts = len(latents["content"])
    weights = np.zeros((len(shares), gen.N_MODELS, n_prompts))
    weights[:, MIX_LIGHT, :] = np.asarray(shares)[:, None]
    weights[:, MIX_HEAVY, :] = 1 - np.asarray(shares)[:, None]
    defect, _ = gen.defect_and_disc_latent(params["disc"], latents)
    return gen._fid_from_stats(params["fid"], gen._served_stats(latents, defect, weights))


def table_random_mix(shares: np.ndarray) -> np.ndarray:
    """`metrics.FidTable.mix_fid` of the split: the share-weighted FIDs alone."""
    light, heavy = HADIS_MODELS[MIX_LIGHT][3], HADIS_MODELS[MIX_HEAVY][3]
    return np.asarray(shares) * light + (1 - np.asarray(shares)) * heavy


# ----------------------------------------------------------------------------- the measurement


def measure(root: Path, k: int = K_FOLDS, seed: int = FOLD_SEED) -> pd.DataFrame:
    """One row per estimator and held-out measurement: estimator, set, light, heavy,
    router_ratio, disc_ratio (cascade rows), light_share (random mixes), measured_fid,
    predicted_fid, error_fid (predicted − measured)."""
    params = gen.load_params()
    latents = gen.sample_latents(int(params["n_prompts"]), int(params["seed"]), gen.FEATURE_DIMS)
    targets = cascade_targets(root, k, seed)
    mixing = ~targets["alone"].to_numpy()
    names = [m[0] for m in HADIS_MODELS]
    cascade = pd.DataFrame(
        {
            "set": SETS[0],
            "light": targets["light_index"].map(names.__getitem__),
            "heavy": targets["heavy_index"].map(names.__getitem__),
            "router_ratio": targets["router_ratio"],
            "disc_ratio": targets["disc_ratio"],
            "light_share": np.nan,
            "measured_fid": targets["fid"],
        }
    )[mixing]
    mixes = read_random_mixes(root)
    shares = mixes["light_share"].to_numpy()
    random = pd.DataFrame(
        {
            "set": SETS[1],
            "light": names[MIX_LIGHT],
            "heavy": names[MIX_HEAVY],
            "router_ratio": np.nan,
            "disc_ratio": np.nan,
            "light_share": shares,
            "measured_fid": mixes["fid"],
        }
    )
    predictions = {
        "exact": (exact_kfold(targets, params, latents), exact_random_mix(shares, params, latents)),
        "table": (table_kfold(targets), table_random_mix(shares)),
    }
    frames = []
    for estimator in ESTIMATORS:
        on_cascades, on_mixes = predictions[estimator]
        for frame, predicted in ((cascade, on_cascades[mixing]), (random, on_mixes)):
            frames.append(frame.assign(estimator=estimator, predicted_fid=predicted))
    rows = pd.concat(frames, ignore_index=True)
    rows["error_fid"] = rows["predicted_fid"] - rows["measured_fid"]
    return rows[
        ["estimator", "set", "light", "heavy", "router_ratio", "disc_ratio", "light_share"]
        + ["measured_fid", "predicted_fid", "error_fid"]
    ]


def summarise(rows: pd.DataFrame) -> pd.DataFrame:
    """Per estimator and set: n, mean_abs_fid, max_abs_fid, bias_fid (mean signed error)."""
    out = []
    for estimator in ESTIMATORS:
        for name in SETS:
            part = rows[(rows["estimator"] == estimator) & (rows["set"] == name)]
            error = part["error_fid"].to_numpy(dtype=np.float64)
            out.append(
                {
                    "estimator": estimator,
                    "set": name,
                    "n": len(error),
                    "mean_abs_fid": float(np.abs(error).mean()),
                    "max_abs_fid": float(np.abs(error).max()),
                    "bias_fid": float(error.mean()),
                }
            )
    return pd.DataFrame(out)


def error_record(summary: pd.DataFrame, k: int = K_FOLDS, seed: int = FOLD_SEED) -> dict:
    """The JSON record committed as ESTIMATOR_ERROR_PATH."""
    return {
        "source": ARTIFACT_SOURCE,
        "description": "out-of-sample error of the FID estimators, output of "
        "simulator.fid_error.measure on the artifact (t2isim bundle fid-error)",
        "k_folds": k,
        "fold_seed": seed,
        "statistic": ERROR_STATISTIC,
        "summary": [
            {key: (round(v, 6) if isinstance(v, float) else v) for key, v in row.items()}
            for row in summary.to_dict(orient="records")
        ],
    }


def record_text(record: dict) -> str:
    """The JSON text of an `error_record` (sorted keys: same measurement, same bytes)."""
    return json.dumps(record, indent=1, sort_keys=True) + "\n"


@lru_cache(maxsize=1)
def committed_summary() -> pd.DataFrame:
    """The committed measurement (ESTIMATOR_ERROR_PATH) as `summarise` returns it."""
    return pd.DataFrame(json.loads(ESTIMATOR_ERROR_PATH.read_text())["summary"])


def estimator_error(method: str) -> float:
    """The out-of-sample FID error of estimator `method`: ERROR_STATISTIC on its worse set;
    0 for "served", the FID of the served images' own features (`simulator.served_features`)."""
    if method == "served":
        return 0.0
    if method not in ESTIMATORS:
        raise EstimatorError(f"FID estimator {method!r}; known: {', '.join(ESTIMATORS)}")
    summary = committed_summary()
    return float(summary.loc[summary["estimator"] == method, ERROR_STATISTIC].max())
