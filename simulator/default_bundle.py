"""The default profile bundle: a synthetic generative model of prompts, discriminator scores and
FID, calibrated to the HADIS artifact, so the toolkit runs without any external data.

Latent model, per prompt p and model m (all draws seeded):

* hardness ``h_p ~ N(0,1)`` drives the composition of a synthetic prompt
  (`simulator.synthetic_prompts`), hence its 8 router features and HADIS router score;
* content ``z_p ~ N(0, I_D)``: what a real image of the prompt looks like in a D-dim feature
  space whose reference (real-image) distribution is N(0, I);
* image defect ``d_pm = b_m h_p + sqrt(1 - w_m^2 - b_m^2) n_pm`` (``n_pm ~ N(0,1)``);
* discriminator latent ``q_pm = w_m z_p0 + d_pm`` (unit variance; ``w`` makes scores correlate
  across models, ``b`` with hardness) and score ``disc_pm = min(1, exp(L_m(q_pm)))`` with
  ``L_m`` piecewise linear through the artifact's log-score quantiles at `SCORE_LEVELS` (tiny,
  heavy-tailed and left-skewed, like the artifact's mean P(real); a log-normal fitted to the
  IQR has too heavy an upper tail, which lowers the oracle router's APGR to 1.01 vs 1.06);
* text signals (`text_signals`): the prompt's content words (`simulator.synthetic_prompts`)
  lean with two N(0,1) per-prompt signals, ease ``e_p`` with corr(e, q_m) = c_m (all models
  do well on easy prompts, the light one most) and light fit ``f_p`` with corr(f, beta q_p0 -
  q_p3) = rho (the light model comes close to the heavy one): what a sentence embedding of a
  real prompt reveals of its images' quality;
* image feature ``x_pm = bias_m + lambda_m z_p - eta_m d_pm e_0``: a biased, narrowed copy of
  the content, pushed along axis 0 by the defect the discriminator sees.

FID of any routing of the prompts to models = ``floor + scale * sum_j (mean_j^2 +
(sd_j - 1)^2)`` over the pooled features of the served images: the Fréchet distance to the
reference between diagonal Gaussian fits, in FID units. Mixing models with different biases
lowers FID below the linear blend (as the artifact's cascades do); escalating low-score light
images removes defects but truncates the light images' spread.

`calibrate` fits the parameters to the artifact: ``L_m`` to the quantiles of each model's log
mean score, ``w`` to the cross-model correlations of log scores, ``b`` to the
Spearman correlation of router score and score, then the FID parameters by least squares to the
726-row hybrid table and the 66-row discriminator-only table (single-model rows weighted 3x).

Replicates (`build_replicate_bundle`, the bundle spec ``default:replicate=K``): the figures'
replicates vary the model too. Replicate K is the latent draw of seed K under calibration draw
K: `calibration_draws` bootstraps the fit (the artifact's prompts resampled for the
discriminator fit, the FID fit's weighted residuals resampled), `N_CALIBRATION_DRAWS` of them
committed in data/default_model_draws.json (`t2isim calibrate ARTIFACT --draws-out FILE`);
replicate K > N uses draw 1 + (K - 1) mod N. Replicate 0 is the nominal bundle.

The text-signal strengths (`TEXT_EASE_CORRELATION`, `TEXT_LIGHT_FIT`) are fitted to the
artifact's prompts (`fit_text_signals`): on the artifact, `text_predictability` of MiniLM
sentence embeddings (a cross-fitted ridge) gives Spearman 0.585, 0.474, 0.387, 0.368 with each
model's log score and 0.385 with the log gap heavy - light, and its level and gap predictions
correlate 0.163 (`ARTIFACT_TEXT_PREDICTABILITY`). A Gaussian model of the ridge (the multiple
correlation of a target with (ease, light fit), times the share kappa of a signal the
embeddings recover from the words) gives (c, rho, beta) matching these six numbers. One lean
alone is recovered at kappa about 0.75; kappa = 0.66 (`TEXT_DECODING_SHARE`) was chosen so
that every router's APGR on `t2isim routers evaluate --data default` lies within 0.05 of the
artifact's (tests/test_default_bundle_signal.py), at the cost of a more readable text: the
default bundle's predictability is 0.666, 0.536, 0.410, 0.372, 0.474 and 0.116. The
discriminator and FID fits do not see the text.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import optimize, stats

from simulator.artifact import (
    HADIS_MODELS,
    HADIS_ROUTER_WEIGHTS,
    hadis_latency_table,
    read_artifact_prompts,
    read_disc_only_table,
    read_hybrid_table,
    scores_table,
)
from simulator.bundle import ROUTER_FEATURES, Bundle, make_meta, validate_tables
from simulator.cascade import expected_latency_s, hybrid_assignment
from simulator.errors import InputError
from simulator.json_input import read_json_object
from simulator.results import sha256_json
from simulator.synthetic_prompts import feature_table, generate_prompts, router_score

DEFAULT_PARAMS_PATH = Path(__file__).with_name("data") / "default_model_params.json"
DEFAULT_DRAWS_PATH = Path(__file__).with_name("data") / "default_model_draws.json"
N_CALIBRATION_DRAWS = 20  # bootstrap draws of the calibration (`calibration_draws`)
BOOTSTRAP_STREAM = 0xB007  # SeedSequence entropy tag of the calibration bootstrap
DEFAULT_SOURCE = "t2isim synthetic model calibrated to hadis-artifact@538dc5d"
CALIBRATION_SOURCE = "hadis-artifact (github Tung-I/diffserve-2@538dc5d)"
FEATURE_DIMS = 3
RATIOS = tuple(round(0.1 * i, 1) for i in range(11))
SINGLE_MODEL_WEIGHT = 3.0
# normal-score levels at which each model's log-score quantiles are fitted (disc_scores)
SCORE_LEVELS = (0.001, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 0.999)
# text_predictability of the artifact's prompts (MiniLM embeddings, light 0, heavy 3)
ARTIFACT_TEXT_PREDICTABILITY = (0.585, 0.474, 0.387, 0.368, 0.385, 0.163)
TEXT_DECODING_SHARE = 0.66  # kappa: the share of a signal a ridge on MiniLM recovers from words
# strength of the text's signals (text_signals) = fit_text_signals(committed disc params)
TEXT_EASE_CORRELATION = (0.834, 0.697, 0.568, 0.395)
TEXT_LIGHT_FIT = (0.545, 0.867)  # (rho, beta)
N_MODELS = len(HADIS_MODELS)
# models.csv load_s: seconds to load a model's fp16 diffusers pipeline from local NVMe onto a GPU
# = its weights / the disk-to-GPU rate measured for SD3.5 Large (16.5 GB in 5.4 s, bound by the
# disk read; outerport.com/blog/sd35-cold-start, Nov 2024). Weights, from the Hugging Face repos'
# file sizes: SDXL-Lightning (SDXL base pipeline) UNet 5.14 GB + CLIP-L 0.25 + OpenCLIP-bigG 1.39
# + VAE 0.17; SD3.5-Large and -Large-Turbo transformer 16.30 + CLIP-L 0.25 + CLIP-G 1.39 +
# T5-XXL 9.52 + VAE 0.17; SD3.5-Medium transformer 4.94 + the same encoders and VAE. Optimistic:
# the same source reports close to a minute for a plain load of the 16.5 GB file on AWS EC2 (and
# 1.5 s from a RAM cache). A profiled bundle carries its own measurement instead
# (profiler/latency.py: the wall time of from_pretrained + .to(device)).
PIPELINE_WEIGHTS_GB = {
    "SDXL-Lightning": 6.94,
    "SD3.5-Large-Turbo": 27.63,
    "SD3.5-Medium": 16.27,
    "SD3.5-Large": 27.63,
}
DISK_TO_GPU_GB_PER_S = 16.5 / 5.4
MODEL_LOAD_S = {m: round(gb / DISK_TO_GPU_GB_PER_S, 1) for m, gb in PIPELINE_WEIGHTS_GB.items()}
LOAD_S_SOURCE = (
    "fp16 pipeline weights (Hugging Face file sizes) / 3.06 GB/s disk-to-GPU, measured for "
    "SD3.5 Large at outerport.com/blog/sd35-cold-start (simulator/default_bundle.py MODEL_LOAD_S)"
)


class ParamsError(InputError):
    """Generative-model parameters that are missing a field or have the wrong shape."""


# ----------------------------------------------------------------------------- latents


def sample_latents(n_prompts: int, seed: int, dims: int) -> dict:
    """Prompt structure (features, router score, hardness) and the seeded latent draws (one RNG
    stream per purpose); the prompts' words come from `prompt_texts`."""
    streams = np.random.SeedSequence(seed).spawn(5)
    prompt_seed, content_seed, noise_seed, ease_seed, fit_seed = streams
    texts, hardness = generate_prompts(n_prompts, prompt_seed)
    features = feature_table(texts)  # the same whatever the prompts' ease (generate_prompts)
    return {
        "prompt_seed": prompt_seed,
        "features": features,
        "router_score": router_score(features),
        "hardness": hardness,
        "content": np.random.default_rng(content_seed).standard_normal((n_prompts, dims)),
        "noise": np.random.default_rng(noise_seed).standard_normal((n_prompts, N_MODELS)),
        "ease_noise": np.random.default_rng(ease_seed).standard_normal(n_prompts),
        "fit_noise": np.random.default_rng(fit_seed).standard_normal(n_prompts),
    }


def defect_and_disc_latent(disc: dict, latents: dict) -> tuple[np.ndarray, np.ndarray]:
    w = np.asarray(disc["content_loading"])
    b = np.asarray(disc["hardness_loading"])
    defect = b * latents["hardness"][:, None] + np.sqrt(1.0 - w**2 - b**2) * latents["noise"]
    return defect, w * latents["content"][:, [0]] + defect


def _log_score(q: np.ndarray, log_quantiles: np.ndarray) -> np.ndarray:
    """Piecewise-linear map of the N(0,1) latent q through (Phi^-1(SCORE_LEVELS),
    log_quantiles), extended linearly beyond the end knots."""
    knots_q = stats.norm.ppf(SCORE_LEVELS)
    slope_low = (log_quantiles[1] - log_quantiles[0]) / (knots_q[1] - knots_q[0])
    slope_high = (log_quantiles[-1] - log_quantiles[-2]) / (knots_q[-1] - knots_q[-2])
    inside = np.interp(q, knots_q, log_quantiles)
    below = log_quantiles[0] + slope_low * (q - knots_q[0])
    above = log_quantiles[-1] + slope_high * (q - knots_q[-1])
    return np.where(q < knots_q[0], below, np.where(q > knots_q[-1], above, inside))


def disc_scores(disc: dict, latents: dict) -> np.ndarray:
    """(n_prompts, n_models) discriminator scores of the generative model."""
    _, q = defect_and_disc_latent(disc, latents)
    knots = np.asarray(disc["log_quantiles"])
    log_score = np.column_stack([_log_score(q[:, m], knots[m]) for m in range(N_MODELS)])
    return np.minimum(np.exp(log_score), 1.0)


def _latent_correlation(disc: dict) -> np.ndarray:
    """(n_models, n_models) correlation of the discriminator latents q."""
    w = np.asarray(disc["content_loading"])
    b = np.asarray(disc["hardness_loading"])
    corr = np.outer(w, w) + np.outer(b, b)
    np.fill_diagonal(corr, 1.0)
    return corr


def text_signals(disc: dict, latents: dict) -> tuple[np.ndarray, np.ndarray]:
    """Per prompt, (ease, light fit): the two N(0, 1) signals its text reveals.

    ease = ``a^T q + sqrt(1 - c^T a) eps_1`` with ``a = C^-1 c``, so that corr(ease, q_m) =
    c_m = `TEXT_EASE_CORRELATION`[m] (C: correlation of the discriminator latents q); light fit
    = ``rho g / sd(g) + sqrt(1 - rho^2) eps_2`` with the gap ``g = beta q_light - q_heavy`` of
    the lightest and the heaviest model, (rho, beta) = `TEXT_LIGHT_FIT`."""
    corr = _latent_correlation(disc)
    c = np.asarray(TEXT_EASE_CORRELATION)
    a = np.linalg.solve(corr, c)
    explained = float(c @ a)
    if explained >= 1.0:
        raise ParamsError(
            f"TEXT_EASE_CORRELATION {tuple(c)}: not attainable with these discriminator "
            f"loadings (c^T C^-1 c = {explained:.3f}, must be < 1)"
        )
    _, q = defect_and_disc_latent(disc, latents)
    ease = q @ a + np.sqrt(1.0 - explained) * latents["ease_noise"]
    rho, beta = TEXT_LIGHT_FIT
    gap_sd = np.sqrt(beta**2 + 1.0 - 2.0 * beta * corr[0, -1])
    gap = (beta * q[:, 0] - q[:, -1]) / gap_sd
    light_fit = rho * gap + np.sqrt(1.0 - rho**2) * latents["fit_noise"]
    return ease, light_fit


def text_predictability(
    embeddings: np.ndarray, quality: np.ndarray, folds: int = 5, alpha: float = 1.0
) -> tuple[float, ...]:
    """What prompt embeddings reveal of quality (n, 4 models), cross-fitted: the Spearman
    correlation of a ridge prediction (`folds`-fold, penalty `alpha`) with each model's log
    quality and with the log gap heavy (last) - light (first), then the correlation of the
    predictions of the heavy model's level and of the gap."""
    log_q = np.log(quality)
    targets = [*log_q.T, log_q[:, -1] - log_q[:, 0]]
    order = np.random.default_rng(0).permutation(len(log_q))
    predictions = []
    for y in targets:
        pred = np.empty(len(y))
        for k in range(folds):
            test = order[k::folds]
            train = np.setdiff1d(order, test)
            x_mean, y_mean = embeddings[train].mean(axis=0), y[train].mean()
            x = embeddings[train] - x_mean
            gram = x.T @ x + alpha * np.eye(x.shape[1])
            beta = np.linalg.solve(gram, x.T @ (y[train] - y_mean))
            pred[test] = (embeddings[test] - x_mean) @ beta + y_mean
        predictions.append(pred)
    spearman = [float(stats.spearmanr(p, y)[0]) for p, y in zip(predictions, targets)]
    return (*spearman, float(np.corrcoef(predictions[-2], predictions[-1])[0, 1]))


def fit_text_signals(
    disc: dict,
    targets: tuple[float, ...] = ARTIFACT_TEXT_PREDICTABILITY,
    kappa: float = TEXT_DECODING_SHARE,
) -> tuple[tuple[float, ...], tuple[float, float]]:
    """(TEXT_EASE_CORRELATION, TEXT_LIGHT_FIT) whose `text_predictability` would be `targets`
    under a Gaussian model of the ridge: a target y = v^T q is predicted with correlation
    kappa * R(y | ease, light fit) (R: multiple correlation), the level and gap predictions
    correlate as their projections on (ease, light fit). Least squares, rounded to 3 digits."""
    corr = _latent_correlation(disc)
    targets_v = [*np.eye(N_MODELS), np.eye(N_MODELS)[-1] - np.eye(N_MODELS)[0]]

    def predicted(x: np.ndarray) -> np.ndarray:
        c, rho, beta = x[:N_MODELS], x[N_MODELS], x[N_MODELS + 1]
        gap = np.zeros(N_MODELS)
        gap[0], gap[-1] = beta, -1.0
        gap_sd = np.sqrt(gap @ corr @ gap)
        r_fit = rho * (corr @ gap) / gap_sd  # corr(light fit, q)
        ease_fit = rho * (c @ gap) / gap_sd  # corr(ease, light fit)
        inverse = np.linalg.inv(np.array([[1.0, ease_fit], [ease_fit, 1.0]]))
        r = [np.array([c @ v, r_fit @ v]) / np.sqrt(v @ corr @ v) for v in targets_v]
        multiple = [np.sqrt(ri @ inverse @ ri) for ri in r]
        level_gap = (r[-2] @ inverse @ r[-1]) / (multiple[-2] * multiple[-1])
        return np.array([*(kappa * np.array(multiple)), level_gap])

    start = np.r_[np.asarray(targets[:N_MODELS]) / kappa, 0.4, 1.0]
    bounds = ([-1.0] * (N_MODELS + 1) + [0.0], [1.0] * (N_MODELS + 1) + [3.0])
    x = optimize.least_squares(lambda x: predicted(x) - np.asarray(targets), start, bounds=bounds).x
    x = np.round(x, 3)
    return tuple(float(v) for v in x[:N_MODELS]), (float(x[N_MODELS]), float(x[N_MODELS + 1]))


def prompt_texts(disc: dict, latents: dict) -> list[str]:
    """The prompts' texts: the structure of `sample_latents`, content words leaning with
    `text_signals` (simulator.synthetic_prompts)."""
    n_prompts = len(latents["hardness"])
    return generate_prompts(n_prompts, latents["prompt_seed"], *text_signals(disc, latents))[0]


# ----------------------------------------------------------------------------- FID


def _served_stats(latents: dict, defect: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Per (routing k, model m): sums over served prompts of [1, z, z^2, d, d^2, z_0 d] / N.

    masks: (K, n_models, N) bool, masks[k, m, p] = prompt p is served by model m in routing k."""
    z = latents["content"]
    n_prompts = len(z)
    out = []
    for m in range(N_MODELS):
        d = defect[:, m]
        g = np.column_stack([np.ones(n_prompts), z, z**2, d, d**2, z[:, 0] * d])
        out.append(masks[:, m, :].astype(np.float64) @ g)
    return np.stack(out, axis=1) / n_prompts


def _fid_from_stats(fid: dict, served: np.ndarray) -> np.ndarray:
    """FID of each routing from its per-model sufficient statistics (see module docstring)."""
    bias = np.asarray(fid["bias"])
    lam = np.asarray(fid["content_scale"])[:, None]
    eta = np.asarray(fid["defect_coupling"])
    dims = bias.shape[1]
    share = served[..., 0]
    sum_z, sum_z2 = served[..., 1 : 1 + dims], served[..., 1 + dims : 1 + 2 * dims]
    sum_d, sum_d2, sum_zd = served[..., -3], served[..., -2], served[..., -1]
    first = share[..., None] * bias + lam * sum_z
    first[..., 0] -= eta * sum_d
    second = share[..., None] * bias**2 + lam**2 * sum_z2 + 2 * bias * lam * sum_z
    second[..., 0] += eta**2 * sum_d2 - 2 * bias[:, 0] * eta * sum_d - 2 * lam[:, 0] * eta * sum_zd
    mean = first.sum(axis=1)
    var = np.maximum(second.sum(axis=1) - mean**2, 0.0)
    frechet = (mean**2).sum(axis=1) + ((np.sqrt(var) - 1.0) ** 2).sum(axis=1)
    return fid["floor"] + fid["scale"] * frechet


def routing_fid(params: dict, latents: dict, served_by: np.ndarray) -> float:
    """FID of the generative model when prompt p is served by model index served_by[p]."""
    served_by = np.asarray(served_by)
    masks = served_by[None, None, :] == np.arange(N_MODELS)[None, :, None]
    defect, _ = defect_and_disc_latent(params["disc"], latents)
    return float(_fid_from_stats(params["fid"], _served_stats(latents, defect, masks))[0])


GROUP_CHUNK = 64  # groups per pass of `served_fid_groups`: 10 MB of weights at 5000 prompts


def _multiset_fids(
    params: dict, latents: dict, defect: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    """FID of each routing k whose served images are weights[k, model, prompt] (multiplicities),
    scaled to one image per prompt (the tables' scale), without the prompt-sample correction."""
    n_prompts = weights.shape[-1]
    scaled = weights * (n_prompts / weights.sum(axis=(1, 2), keepdims=True))
    return _fid_from_stats(params["fid"], _served_stats(latents, defect, scaled))


def _alone_fids(params: dict, latents: dict, defect: np.ndarray, prompts: np.ndarray) -> np.ndarray:
    """(K, n_models): FID of each prompt multiset prompts[k] served by each model alone."""
    k, n_prompts = prompts.shape
    scaled = prompts * (n_prompts / prompts.sum(axis=1, keepdims=True))
    every_model = np.broadcast_to(scaled[:, None, :], (k, N_MODELS, n_prompts))
    stats = _served_stats(latents, defect, every_model)  # [k, m]: model m serving all of k
    alone = stats[:, :, None, :] * np.eye(N_MODELS)[None, :, :, None]  # routing m: m only
    return _fid_from_stats(params["fid"], alone.reshape(k * N_MODELS, N_MODELS, -1)).reshape(
        k, N_MODELS
    )


def _multiset_fid(
    params: dict, latents: dict, prompt_idx: np.ndarray, model_idx: np.ndarray
) -> float:
    weights = np.zeros((1, N_MODELS, len(latents["content"])))
    np.add.at(weights[0], (np.asarray(model_idx), np.asarray(prompt_idx)), 1.0)
    defect, _ = defect_and_disc_latent(params["disc"], latents)
    return float(_multiset_fids(params, latents, defect, weights)[0])


def served_fid(params: dict, latents: dict, prompt_idx: np.ndarray, model_idx: np.ndarray) -> float:
    """FID of the generative model for the served images (prompt_idx[i] served by
    model_idx[i]), on the scale of the bundle's tables: a finite trace samples only some
    prompts, which alone moves FID (as with real images); that prompt-sample bias is measured
    per model (the same prompts all served by model m, minus m's FID over every prompt) and
    removed in proportion to each model's share of the served images."""
    group = np.zeros(len(np.asarray(prompt_idx)), dtype=np.int64)
    return float(served_fid_groups(params, latents, prompt_idx, model_idx, group, 1)[0])


def served_fid_groups(
    params: dict,
    latents: dict,
    prompt_idx: np.ndarray,
    model_idx: np.ndarray,
    group: np.ndarray,
    n_groups: int,
) -> np.ndarray:
    """`served_fid` of each group of served images at once (image i in group[i], e.g. a run's
    plan epochs), `GROUP_CHUNK` groups per pass over the prompts: (n_groups,), NaN for an
    empty group."""
    prompt_idx, model_idx, group = (np.asarray(a) for a in (prompt_idx, model_idx, group))
    defect, _ = defect_and_disc_latent(params["disc"], latents)
    fid = np.full(n_groups, np.nan)
    for first in range(0, n_groups, GROUP_CHUNK):
        size = min(GROUP_CHUNK, n_groups - first)
        here = (group >= first) & (group < first + size)
        served = np.zeros((size, N_MODELS, len(latents["content"])))
        np.add.at(served, (group[here] - first, model_idx[here], prompt_idx[here]), 1.0)
        filled = served.sum(axis=(1, 2)) > 0
        if filled.any():
            fid[first : first + size][filled] = _corrected_fids(
                params, latents, defect, served[filled]
            )
    return fid


def _corrected_fids(
    params: dict, latents: dict, defect: np.ndarray, served: np.ndarray
) -> np.ndarray:
    """`served_fid` of each routing served[k, model, prompt] (image multiplicities, none empty):
    the multiset's FID minus its prompt-sample bias."""
    n_prompts = served.shape[-1]
    counts = served.sum(axis=2)  # images per routing and model
    share = counts / counts.sum(axis=1, keepdims=True)
    alone_sample = _alone_fids(params, latents, defect, served.sum(axis=1))
    alone_population = _alone_fids(params, latents, defect, np.ones((1, n_prompts)))
    bias = (share * (alone_sample - alone_population)).sum(axis=1)
    return _multiset_fids(params, latents, defect, served) - bias


@lru_cache(maxsize=16)  # a figure's sweep alternates between its replicates' latent draws
def _cached_latents(n_prompts: int, seed: int) -> dict:
    return sample_latents(n_prompts, seed, FEATURE_DIMS)


def generative_model(bundle: Bundle) -> tuple[dict, dict] | None:
    """(params, latents) of the generative model that built `bundle` — only when it was built
    by `build_default_bundle` from the committed parameters or a replicate's
    (`replicate_params`) and its discriminator scores regenerate exactly — else None."""
    generator = bundle.meta.get("generator")
    if bundle.meta.get("provenance", {}).get("source") != DEFAULT_SOURCE or not generator:
        return None
    params = _committed_params().get(generator.get("params_sha256"))
    if params is None:
        return None  # built from other parameters than the committed ones or their draws
    latents = _cached_latents(int(generator["n_prompts"]), int(generator["seed"]))
    scores = disc_scores(params["disc"], latents)
    if scores.shape != bundle.disc_score.shape or not np.allclose(
        scores, bundle.disc_score, rtol=1e-6, atol=1e-12
    ):
        return None
    return params, latents


def generative_fid(bundle: Bundle) -> Callable[[np.ndarray, np.ndarray], float] | None:
    """served-images FID function of a bundle built by `build_default_bundle` (None otherwise)."""
    model = generative_model(bundle)
    if model is None:
        return None
    params, latents = model
    return lambda prompt_idx, model_idx: served_fid(params, latents, prompt_idx, model_idx)


def _cascade_masks(
    router: np.ndarray, disc: np.ndarray, configs: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray]:
    """(served masks (K, n_models, N), bypassed fraction (K,)) of (light, heavy, r, c) rows."""
    masks = np.zeros((len(configs), N_MODELS, len(router)), dtype=bool)
    bypass = np.empty(len(configs))
    for k, row in enumerate(configs.itertuples(index=False)):
        bypassed, escalated = hybrid_assignment(
            router, disc[:, row.light_index], row.router_ratio, row.disc_ratio
        )
        heavy = bypassed | escalated
        masks[k, row.heavy_index] = heavy
        masks[k, row.light_index] = ~heavy
        bypass[k] = bypassed.mean()
    return masks, bypass


def cascade_grid() -> pd.DataFrame:
    """Every model pair (light < heavy) x router_ratio x disc_ratio in 0..1 step 0.1."""
    rows = [
        (light, heavy, r, c)
        for light in range(N_MODELS)
        for heavy in range(light + 1, N_MODELS)
        for r in RATIOS
        for c in RATIOS
    ]
    return pd.DataFrame(rows, columns=["light_index", "heavy_index", "router_ratio", "disc_ratio"])


# ----------------------------------------------------------------------------- bundle


def load_params(path: Path = DEFAULT_PARAMS_PATH) -> dict:
    params = read_json_object(path, ParamsError)
    _check_params(params, str(path))
    return params


def save_params(params: dict, path: Path) -> Path:
    """Write parameters as sorted, indented JSON (byte-stable)."""
    _check_params(params, str(path))
    path = Path(path)
    path.write_text(json.dumps(params, indent=2, sort_keys=True) + "\n")
    return path


def _check_params(params: dict, where: str) -> None:
    shapes = {
        ("disc", "log_quantiles"): (N_MODELS, len(SCORE_LEVELS)),
        ("disc", "content_loading"): (N_MODELS,),
        ("disc", "hardness_loading"): (N_MODELS,),
        ("fid", "bias"): (N_MODELS, FEATURE_DIMS),
        ("fid", "content_scale"): (N_MODELS,),
        ("fid", "defect_coupling"): (N_MODELS,),
        ("fid", "floor"): (),
        ("fid", "scale"): (),
    }
    if not isinstance(params.get("source"), str):
        raise ParamsError(f"{where}: field source: missing (must name the calibration data)")
    for (group, key), shape in shapes.items():
        try:
            value = np.asarray(params[group][key], dtype=np.float64)
        except (KeyError, TypeError, ValueError):
            raise ParamsError(f"{where}: field {group}.{key}: missing or not numeric") from None
        if value.shape != shape or not np.isfinite(value).all():
            raise ParamsError(f"{where}: field {group}.{key}: expected finite shape {shape}")
    if (np.diff(np.asarray(params["disc"]["log_quantiles"]), axis=1) <= 0).any():
        raise ParamsError(f"{where}: field disc.log_quantiles: each row must increase")
    w = np.asarray(params["disc"]["content_loading"])
    b = np.asarray(params["disc"]["hardness_loading"])
    if (w**2 + b**2 >= 1.0).any():
        raise ParamsError(f"{where}: field disc: content_loading^2 + hardness_loading^2 >= 1")


def build_default_bundle(
    params: dict | None = None, n_prompts: int = 5000, seed: int = 0
) -> Bundle:
    """The calibrated synthetic bundle: `n_prompts` synthetic prompts, scores for the four
    HADIS models, L40S latencies and the 726-row cascade table of the generative model."""
    params = load_params() if params is None else params
    _check_params(params, "params")
    latents = sample_latents(n_prompts, seed, FEATURE_DIMS)
    disc = disc_scores(params["disc"], latents)
    defect, _ = defect_and_disc_latent(params["disc"], latents)
    grid = cascade_grid()
    masks, bypass = _cascade_masks(latents["router_score"], disc, grid)
    fids = _fid_from_stats(params["fid"], _served_stats(latents, defect, masks))
    names = [m[0] for m in HADIS_MODELS]
    latency_b1 = np.array([m[2] for m in HADIS_MODELS])
    heavy_share = masks[np.arange(len(grid)), grid["heavy_index"].to_numpy()].mean(axis=1)
    cascades = pd.DataFrame(
        {
            "light": [names[i] for i in grid["light_index"]],
            "heavy": [names[i] for i in grid["heavy_index"]],
            "router_ratio": grid["router_ratio"],
            "disc_ratio": grid["disc_ratio"],
            "heavy_share": heavy_share,
            "latency_s": expected_latency_s(
                latency_b1[grid["light_index"]],
                latency_b1[grid["heavy_index"]],
                bypass,
                heavy_share,
            ),
            "fid": np.round(fids, 4),
        }
    )
    alone = np.repeat(np.eye(N_MODELS, dtype=bool)[:, :, None], n_prompts, axis=2)
    models = pd.DataFrame(
        {
            "model": names,
            "steps": [m[1] for m in HADIS_MODELS],
            "load_s": [MODEL_LOAD_S[name] for name in names],
            "fid_alone": np.round(
                _fid_from_stats(params["fid"], _served_stats(latents, defect, alone)), 4
            ),
        }
    )
    texts = prompt_texts(params["disc"], latents)
    prompts = pd.DataFrame({"prompt_id": np.arange(n_prompts), "text": texts})
    for feature in ROUTER_FEATURES:
        prompts[feature] = latents["features"][feature].to_numpy()
    prompts["router_score"] = latents["router_score"]
    meta = make_meta(
        "default-synthetic",
        DEFAULT_SOURCE,
        "NVIDIA L40S (latencies of the HADIS artifact)",
        router={"features": list(ROUTER_FEATURES), "weights": list(HADIS_ROUTER_WEIGHTS)},
        generator={
            "n_prompts": n_prompts,
            "seed": seed,
            "params_source": params["source"],
            "params_sha256": sha256_json(params),
            "text_ease_correlation": list(TEXT_EASE_CORRELATION),
            "text_light_fit": list(TEXT_LIGHT_FIT),
        },
        cascade_semantics="heavy_share and latency_s use the realised bypass/heavy fractions",
        load_s_source=LOAD_S_SOURCE,
    )
    tables = {
        "models": models,
        "latency": hadis_latency_table(),
        "prompts": prompts,
        "scores": scores_table(tuple(names), disc),
        "cascades": cascades,
    }
    return validate_tables(meta, tables)


# ----------------------------------------------------------------------------- calibration


def _fit_disc(artifact_disc: np.ndarray, artifact_router: np.ndarray, latents: dict) -> dict:
    """Score distribution (quantiles of log score), cross-model loadings and hardness
    loadings."""
    log_score = np.log(artifact_disc)
    corr = np.corrcoef(log_score.T)
    upper = np.triu_indices(N_MODELS, 1)

    def loading_residual(w: np.ndarray) -> np.ndarray:
        return np.outer(w, w)[upper] - corr[upper]

    w = optimize.least_squares(loading_residual, np.full(N_MODELS, 0.6), bounds=(0.0, 0.95)).x
    targets = [stats.spearmanr(artifact_router, artifact_disc[:, m])[0] for m in range(N_MODELS)]
    hardness_limit = float(np.sqrt(1.0 - w.max() ** 2)) * 0.99
    b = np.zeros(N_MODELS)
    for m, target in enumerate(targets):

        def spearman_gap(b_m: float, m: int = m, target: float = target) -> float:
            trial = np.zeros(N_MODELS)
            trial[m] = b_m
            disc = {"content_loading": w, "hardness_loading": trial}
            _, q = defect_and_disc_latent(disc, latents)
            return stats.spearmanr(latents["router_score"], q[:, m])[0] - target

        b[m] = optimize.brentq(spearman_gap, -hardness_limit, hardness_limit, xtol=1e-5)
    return {
        "log_quantiles": np.quantile(log_score, SCORE_LEVELS, axis=0).T.tolist(),
        "content_loading": w.tolist(),
        "hardness_loading": b.tolist(),
    }


def _unpack_fid(x: np.ndarray) -> dict:
    n_bias = N_MODELS * FEATURE_DIMS
    return {
        "bias": x[:n_bias].reshape(N_MODELS, FEATURE_DIMS).tolist(),
        "content_scale": x[n_bias : n_bias + N_MODELS].tolist(),
        "defect_coupling": x[n_bias + N_MODELS : n_bias + 2 * N_MODELS].tolist(),
        "floor": float(x[-2]),
        "scale": float(x[-1]),
    }


def _fid_vector(fid: dict) -> np.ndarray:
    """Inverse of `_unpack_fid`."""
    return np.concatenate(
        [
            np.ravel(fid["bias"]),
            fid["content_scale"],
            fid["defect_coupling"],
            [fid["floor"], fid["scale"]],
        ]
    )


def _initial_fid_vector(fid_alone: np.ndarray) -> np.ndarray:
    """Deterministic start: each model's bias along its own corner of a simplex, sized so that
    floor + scale * |bias|^2 is its FID alone."""
    floor, scale = 0.5 * fid_alone.min(), 40.0
    corners = np.eye(N_MODELS, FEATURE_DIMS) - np.eye(N_MODELS, FEATURE_DIMS, k=-1) * 0.5
    corners /= np.linalg.norm(corners, axis=1, keepdims=True)
    bias = corners * np.sqrt((fid_alone - floor) / scale)[:, None]
    return np.concatenate(
        [bias.ravel(), np.full(N_MODELS, 0.9), np.full(N_MODELS, 0.2), [floor, scale]]
    )


def _artifact_targets(root: Path) -> pd.DataFrame:
    """Hybrid rows plus discriminator-only rows (= hybrid rows with r = 0), with weights."""
    names = [m[0] for m in HADIS_MODELS]
    hybrid = read_hybrid_table(root)
    disc_only = read_disc_only_table(root).assign(router_ratio=0.0)
    disc_only["disc_ratio"] = disc_only["threshold"]
    rows = pd.concat([hybrid, disc_only], ignore_index=True)
    single = ((rows["router_ratio"] == 1.0) | (rows["disc_ratio"] == 1.0)) | (
        (rows["router_ratio"] == 0.0) & (rows["disc_ratio"] == 0.0)
    )
    return pd.DataFrame(
        {
            "light_index": rows["light"].map(names.index),
            "heavy_index": rows["heavy"].map(names.index),
            "router_ratio": rows["router_ratio"].round(1),
            "disc_ratio": rows["disc_ratio"].round(1),
            "fid": rows["fid"],
            "weight": np.where(single, SINGLE_MODEL_WEIGHT, 1.0),
            "table": ["hybrid"] * len(hybrid) + ["disc_only"] * len(disc_only),
        }
    )


def cascade_stats(disc: dict, latents: dict, configs: pd.DataFrame) -> np.ndarray:
    """`_served_stats` of the cascade configurations (light_index, heavy_index, router_ratio,
    disc_ratio rows) under discriminator parameters `disc`."""
    masks, _ = _cascade_masks(latents["router_score"], disc_scores(disc, latents), configs)
    defect, _ = defect_and_disc_latent(disc, latents)
    return _served_stats(latents, defect, masks)


def fit_fid(
    served: np.ndarray, fid_target: np.ndarray, weight: np.ndarray, start: dict | None = None
) -> tuple[dict, int]:
    """(FID parameters, least-squares evaluations): the weighted least-squares fit of the
    model's FID of each routing (its `_served_stats`) to `fid_target`, from `start` (FID
    parameters) or a deterministic start."""
    fid_alone = np.array([m[3] for m in HADIS_MODELS])

    def residual(x: np.ndarray) -> np.ndarray:
        return weight * (_fid_from_stats(_unpack_fid(x), served) - fid_target)

    x0 = _initial_fid_vector(fid_alone) if start is None else _fid_vector(start)
    solution = optimize.least_squares(residual, x0, x_scale="jac", ftol=1e-7, xtol=1e-7)
    return _unpack_fid(solution.x), int(solution.nfev)


def calibrate(artifact_path: Path, n_prompts: int = 5000, seed: int = 0) -> dict:
    """Fit the generative model to the HADIS artifact (deterministic); returns the params dict
    that `build_default_bundle` takes, with the achieved fit under ``fit``."""
    root = Path(artifact_path)
    artifact_prompts, artifact_disc = read_artifact_prompts(root)
    artifact_router = artifact_prompts["router_score"].to_numpy()
    latents = sample_latents(n_prompts, seed, FEATURE_DIMS)
    disc = _fit_disc(artifact_disc, artifact_router, latents)
    targets = _artifact_targets(root)
    synthetic_disc = disc_scores(disc, latents)
    served = cascade_stats(disc, latents, targets)
    fid_target = targets["fid"].to_numpy()
    fid, evaluations = fit_fid(served, fid_target, targets["weight"].to_numpy())
    predicted = _fid_from_stats(fid, served)
    error = predicted - fid_target
    hybrid = (targets["table"] == "hybrid").to_numpy()
    router = latents["router_score"]
    fit = {
        "hybrid_rmse_fid": float(np.sqrt(np.mean(error[hybrid] ** 2))),
        "disc_only_rmse_fid": float(np.sqrt(np.mean(error[~hybrid] ** 2))),
        "max_abs_error_fid": float(np.abs(error).max()),
        "spearman_router_disc_artifact": [
            float(stats.spearmanr(artifact_router, artifact_disc[:, m])[0]) for m in range(N_MODELS)
        ],
        "spearman_router_disc_model": [
            float(stats.spearmanr(router, synthetic_disc[:, m])[0]) for m in range(N_MODELS)
        ],
        "least_squares_evaluations": evaluations,
    }
    return {
        "source": CALIBRATION_SOURCE,
        "description": "parameters of simulator.default_bundle's generative model, "
        "output of simulator.default_bundle.calibrate on the artifact",
        "n_prompts": n_prompts,
        "seed": seed,
        "disc": disc,
        "fid": fid,
        "fit": fit,
    }


# ----------------------------------------------------------------------------- replicates


def calibration_draws(
    artifact_path: Path, n_draws: int = N_CALIBRATION_DRAWS, params: dict | None = None
) -> dict:
    """The calibration's uncertainty as `n_draws` bootstrap refits of `calibrate` (the
    committed parameters `params` are the nominal fit): draw k resamples the artifact's prompts
    with replacement and refits the discriminator parameters on them (`_fit_disc`: the
    sampling error of quantiles and correlations), then refits the FID parameters to the
    nominal fit's predictions plus its weighted residuals resampled with replacement (a
    residual bootstrap of the least-squares fit: it treats the 0.06-FID lack of fit as
    independent noise, so draws share the fit's structured error), from the nominal FID
    parameters, on the calibration's own latent draw. Seeded per draw; deterministic."""
    root = Path(artifact_path)
    nominal = load_params() if params is None else params
    artifact_prompts, artifact_disc = read_artifact_prompts(root)
    artifact_router = artifact_prompts["router_score"].to_numpy()
    latents = sample_latents(int(nominal["n_prompts"]), int(nominal["seed"]), FEATURE_DIMS)
    targets = _artifact_targets(root)
    weight = targets["weight"].to_numpy()
    fitted = _fid_from_stats(nominal["fid"], cascade_stats(nominal["disc"], latents, targets))
    residual = weight * (targets["fid"].to_numpy() - fitted)
    draws = []
    for k in range(1, n_draws + 1):
        rng = np.random.default_rng(np.random.SeedSequence([BOOTSTRAP_STREAM, k]))
        rows = rng.integers(0, len(artifact_disc), len(artifact_disc))
        disc = _fit_disc(artifact_disc[rows], artifact_router[rows], latents)
        fid_target = fitted + rng.choice(residual, len(residual)) / weight
        served = cascade_stats(disc, latents, targets)
        fid, _ = fit_fid(served, fid_target, weight, start=nominal["fid"])
        draws.append({"disc": _rounded(disc), "fid": _rounded(fid)})
    return {
        "source": CALIBRATION_SOURCE,
        "description": "bootstrap draws of simulator.default_bundle's calibrated parameters, "
        "output of simulator.default_bundle.calibration_draws on the artifact",
        "command": f"t2isim calibrate ARTIFACT --draws {n_draws} --draws-out "
        "simulator/data/default_model_draws.json",
        "method": "prompt bootstrap (discriminator fit) + residual bootstrap (FID fit)",
        "params_sha256": sha256_json(nominal),
        "draws": draws,
    }


def save_draws(record: dict, path: Path) -> Path:
    """Write a `calibration_draws` record as sorted JSON, one space of indent (byte-stable)."""
    path = Path(path)
    path.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    return path


def _rounded(group: dict) -> dict:
    """Parameters rounded to 6 decimals (well inside their bootstrap spread)."""
    return {key: np.round(value, 6).tolist() for key, value in group.items()}


def load_draws(path: Path = DEFAULT_DRAWS_PATH) -> dict:
    """The committed calibration draws (`calibration_draws`), checked against the committed
    parameters they were drawn around."""
    try:
        record = json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        raise ParamsError(f"{path}: line {exc.lineno}: invalid JSON ({exc.msg})") from None
    draws = record.get("draws")
    if not isinstance(draws, list) or not draws:
        raise ParamsError(f"{path}: field draws: missing or empty (expected a list of draws)")
    if record.get("params_sha256") != sha256_json(load_params()):
        raise ParamsError(
            f"{path}: drawn around other parameters than {DEFAULT_PARAMS_PATH.name}; "
            f"regenerate it ({record.get('command', 't2isim calibrate --draws-out')})"
        )
    return record


def replicate_params(replicate: int) -> dict:
    """Parameters of bundle replicate `replicate`: the committed ones for 0, else calibration
    draw 1 + (replicate - 1) mod K of the K committed draws."""
    nominal = load_params()
    if replicate == 0:
        return nominal
    record = load_draws()
    index = (replicate - 1) % len(record["draws"])
    params = {
        **{key: value for key, value in nominal.items() if key != "fit"},
        **record["draws"][index],
        "source": f"{record['source']}: calibration bootstrap draw {index + 1} of "
        f"{len(record['draws'])} ({DEFAULT_DRAWS_PATH.name})",
    }
    _check_params(params, f"{DEFAULT_DRAWS_PATH.name} draw {index + 1}")
    return params


def build_replicate_bundle(replicate: int) -> Bundle:
    """Default bundle, replicate k: the latent draw of seed k under calibration draw k
    (`replicate_params`); replicate 0 is `build_default_bundle()` itself."""
    if replicate == 0:
        return build_default_bundle()
    return build_default_bundle(replicate_params(replicate), seed=replicate)


@lru_cache(maxsize=1)
def _committed_params() -> dict[str, dict]:
    """sha256_json -> parameters, of the committed parameters and of every replicate's."""
    n_draws = len(load_draws()["draws"]) if DEFAULT_DRAWS_PATH.exists() else 0
    params = [replicate_params(k) for k in range(n_draws + 1)]
    return {sha256_json(p): p for p in params}
