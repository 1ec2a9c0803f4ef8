"""Synthetic text-to-image prompts and a dependency-free extractor of the 8 HADIS router features.

Generator: each prompt has a latent hardness h ~ N(0, 1) that raises the expected number of
objects, attributes, spatial relations, action verbs, abstract nouns, named entities and rare
words it contains (Poisson counts with rate ``base * exp(slope * h)``), so the router features,
and the router score built from them, are noisy functions of h.

Content: the common objects, attributes and moods (abstract nouns) of a prompt are drawn, from
a second RNG stream, out of four pools each (`OBJECT_POOLS`, ...), indexed by two per-prompt
leans: ``ease`` (people, animals, vehicles and still lifes are hard to render, landscapes and
buildings easy) and ``light_fit`` (landscapes, still lifes and plain colours come out of a
few-step light model about as well as from the heavy one; people, street scenes and small or
broken details need the heavy one). A word comes from the easy half with
probability Phi(1.5 * ease) and from the light-fit half with probability Phi(1.5 * light_fit).
Every pool word has the router features of any other word of its kind, and the draws per word
do not depend on the leans, so the leans move what a prompt is about (what a sentence
embedding sees) and never its structure, features or HADIS router score. The default bundle
(`simulator.default_bundle.text_signals`) ties the leans to the images' latent quality.

Extractor (`extract_features`): the artifact computed the features with spaCy
``en_core_web_sm``, wordfreq and the Brysbaert concreteness norms (see the data README). Here the
same definitions are approximated with token rules and the word lists of this module:

* tokens: words (letters and apostrophes), numbers, and single punctuation characters;
* ``prompt_length``: non-punctuation tokens (as the artifact);
* ``token_rarity``: punctuation (the artifact counts it as rare) plus words not in
  `COMMON_WORDS` (stand-in for ``wordfreq < 1e-5``; unknown words count as rare);
* ``num_objects``: noun-phrase heads (a known noun, a pronoun, or an unknown word not classed
  otherwise, not followed by another noun) that are prepositional objects (the nearest preceding
  non-determiner, non-adjective token is a preposition) or, when the prompt has a verb or
  copula, subjects/objects (stand-in for the nsubj/dobj/pobj dependency labels; a verbless
  fragment's head noun is its root and does not count, as with spaCy);
* ``abstractness``: tokens in `ABSTRACT_WORDS` (low-concreteness function words, abstract nouns
  and evaluative adjectives: stand-in for ``Conc.M < 2.5``, unknown words concrete);
* ``attribute_density``: known adjectives, unknown words with adjective suffixes, and ``-ed``
  words right before a noun (stand-in for ADJ / amod / acomp);
* ``spatial_relations``: occurrences of `SPATIAL_TERMS`, longest match first;
* ``action_verbs``: inflections of `ACTION_VERBS`, plus unknown ``-ing``/``-ed`` words that are
  not noun modifiers or nouns after a determiner (stand-in for the VERB tag; copulas are AUX);
* ``named_entities``: entries of `NAMED_ENTITIES` (case-insensitive, longest match first) plus
  runs of capitalised unknown words not at the start of the prompt (stand-in for PERSON/ORG/GPE).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from scipy import stats

from simulator.bundle import ROUTER_FEATURES

# ----------------------------------------------------------------------------- word lists


def _terms(text: str) -> tuple[str, ...]:
    """A comma-separated word list as a tuple (terms may span several words)."""
    return tuple(term.strip() for term in text.split(","))


COMMON_OBJECTS = _terms(
    "dog, cat, man, woman, child, boy, girl, car, tree, house, bird, horse, boat, table, chair, "
    "ball, flower, book, cup, bottle, window, door, road, river, mountain, beach, field, grass, "
    "street, bridge, train, bus, bike, hat, shirt, dress, phone, clock, lamp, bed, box, fish, "
    "water, sky, wall, city, garden, forest, snow, rock, fence, building, plate, bag, shoe, "
    "kitchen, room, truck, plane, flag, cake, apple"
)
RARE_OBJECTS = _terms(
    "handkerchief, accordion, armadillo, gondola, trebuchet, marmot, chalice, harpsichord, "
    "sextant, pangolin, samovar, lorikeet, kayak, ocarina, axolotl, periscope, tapir, zither, "
    "narwhal, abacus"
)
COMMON_ATTRIBUTES = _terms(
    "red, white, black, green, blue, yellow, brown, small, large, big, old, young, wooden, metal, "
    "tall, bright, dark, little, long, round, soft, heavy, wet, empty, broken, golden, huge, "
    "tiny, clean, wild"
)
RARE_ATTRIBUTES = _terms(
    "iridescent, weathered, ornate, gilded, translucent, rusty, striped, fluffy, mossy, velvety, "
    "speckled, frosted, embroidered, crumbling"
)
ABSTRACT_NOUNS = _terms(
    "freedom, hope, nostalgia, chaos, serenity, love, memory, silence, loneliness, harmony, "
    "justice, time, fear, joy, despair, eternity, wisdom, ambition, grief, wonder"
)
ABSTRACT_ADJECTIVES = _terms("beautiful, happy, strange, mysterious, abstract, surreal")
ACTION_VERBS = _terms(
    "sit, stand, run, jump, hold, eat, play, fly, swim, ride, walk, sleep, read, carry, climb, "
    "chase, look, watch, drink, dance, sing, throw, catch, pull, push, lie, rest, float, hang, "
    "cross"
)
NAMED_ENTITIES = _terms(
    "Paris, Tokyo, New York, London, Van Gogh, Picasso, Monet, Einstein, Google, NASA, Rome, "
    "Egypt, Venice, Shakespeare, Disney, Mount Fuji"
)
SPATIAL_TERMS = _terms(
    "on top of, in front of, next to, on, in, at, under, above, below, behind, beside, near, "
    "inside, outside, over, across, along, among, between, beneath, underneath, through, toward, "
    "onto, into, by, with, within, around, against, beyond, from, to, up, down, off, upon"
)
DETERMINERS = ("a", "an", "the", "this", "that", "these", "those", "some", "two", "three")
PRONOUNS = ("it", "them", "him", "her", "he", "she", "they", "we", "you", "i", "us")
COPULAS = ("is", "are", "was", "were", "be", "been", "being", "has", "have", "had")
FUNCTION_WORDS = (
    *DETERMINERS,
    *PRONOUNS,
    *COPULAS,
    *_terms(
        "of, and, or, but, for, as, its, his, their, my, our, your, there, here, very, many, "
        "while, other, another, each, both, all, no, not, who, which, what, where, like, one"
    ),
)
# frequent nouns beyond the object vocabulary (stand-in for wordfreq >= 1e-5)
EXTRA_NOUNS = _terms(
    "people, person, picture, photo, image, view, group, area, day, night, light, color, "
    "background, front, top, side, middle, part, way, thing, place, world, sun, sea, hand, head, "
    "face, eye, hair, food, animal, game, home, school, family, friend, baby, music, art, paper, "
    "glass, wood, stone, wheel, tower, park, lake, hill, island, ship, bear, sense, style"
)
EXTRA_ADJECTIVES = _terms(
    "good, new, great, high, open, full, close, far, hot, cold, pink, orange, purple, gray, "
    "grey, silver, pretty, nice, several, made, left, right"
)
# low-concreteness tokens (stand-in for Conc.M < 2.5): function words, abstract nouns/adjectives
ABSTRACT_WORDS = frozenset(
    (
        *_terms(
            "a, an, the, is, are, was, were, be, been, being, with, of, at, to, from, by, for, "
            "and, or, but, its, this, that, these, those, there, very, some, many, while, as, "
            "into, onto, over, my, our, your, other, each, all, no, not, have, had, who, which, "
            "what, where, like, around, against, along, among, sense, style"
        ),
        *ABSTRACT_NOUNS,
        *ABSTRACT_ADJECTIVES,
    )
)
ADJECTIVE_SUFFIXES = ("ous", "ful", "ive", "able", "ible", "ish", "less", "ic")
IRREGULAR_PAST = dict(
    pair.split(":")
    for pair in _terms(
        "sit:sat, stand:stood, run:ran, hold:held, eat:ate, fly:flew, swim:swam, ride:rode, "
        "sleep:slept, read:read, throw:threw, catch:caught, sing:sang, lie:lay, hang:hung, "
        "drink:drank"
    )
)


def _inflections(verb: str) -> tuple[str, str, str]:
    """Third-person, -ing and past forms by regular English morphology (few irregulars)."""
    if verb.endswith("ie"):
        ing = verb[:-2] + "ying"
    elif verb.endswith("e") and not verb.endswith("ee"):
        ing = verb[:-1] + "ing"
    elif verb in ("sit", "run", "swim"):
        ing = verb + verb[-1] + "ing"
    else:
        ing = verb + "ing"
    consonant_y = verb.endswith("y") and verb[-2] not in "aeiou"
    if verb.endswith(("s", "sh", "ch", "x")):
        third = verb + "es"
    else:
        third = verb[:-1] + "ies" if consonant_y else verb + "s"
    if verb in IRREGULAR_PAST:
        past = IRREGULAR_PAST[verb]
    elif verb.endswith("e"):
        past = verb + "d"
    else:
        past = verb[:-1] + "ied" if consonant_y else verb + "ed"
    return third, ing, past


VERB_FORMS = frozenset(form for verb in ACTION_VERBS for form in (verb, *_inflections(verb)))
ADJECTIVES = frozenset(
    (*COMMON_ATTRIBUTES, *RARE_ATTRIBUTES, *ABSTRACT_ADJECTIVES, *EXTRA_ADJECTIVES)
)
NOUNS = frozenset((*COMMON_OBJECTS, *RARE_OBJECTS, *ABSTRACT_NOUNS, *EXTRA_NOUNS))
COMMON_WORDS = frozenset(
    (
        *FUNCTION_WORDS,
        *COMMON_OBJECTS,
        *COMMON_ATTRIBUTES,
        *ABSTRACT_NOUNS,
        *ABSTRACT_ADJECTIVES,
        *EXTRA_NOUNS,
        *EXTRA_ADJECTIVES,
        *(word for term in SPATIAL_TERMS for word in term.split()),
        *VERB_FORMS,
    )
)
HADIS_ROUTER_WEIGHTS = (0.85, 0.32, 0.72, 0.99, 0.76, 0.07, 0.78, 0.01)
TRANSITIVE_VERBS = _terms(
    "hold, carry, chase, watch, eat, throw, catch, pull, push, read, ride, climb, cross, drink"
)
PLACES = _terms("Paris, Tokyo, New York, London, Rome, Egypt, Venice, Mount Fuji")
LOCATIVE_TERMS = _terms(
    "on, in, under, above, below, behind, beside, near, next to, in front of, on top of, inside, "
    "across, along, beneath, over"
)
FRAMES = ("a photo of", "a close-up of", "a painting of", "an image of", "a view of")
ABSTRACT_PATTERNS = ("evoking {}", "with a sense of {}", "symbolizing {}", "full of {}")
# Content pools (see the module docstring), indexed [easy][light_fit]: [0] hard, [1] easy;
# [..][0] needs the heavy model, [..][1] fits the light one. Every word has the same router
# features as any other word of its kind (objects, attributes, moods).
OBJECT_POOLS = (
    (
        _terms(
            "dog, cat, man, woman, child, boy, girl, bird, horse, car, train, bus, bike, truck, "
            "plane"
        ),
        _terms("cup, bottle, plate, box, lamp, bed, cake, apple, chair, ball, book, hat, shoe"),
    ),
    (
        _terms(
            "house, building, bridge, city, street, road, wall, fence, window, door, kitchen, "
            "room, clock, phone"
        ),
        _terms(
            "mountain, beach, river, field, sky, forest, snow, garden, grass, water, tree, "
            "flower, rock, boat, flag, shirt, dress, bag"
        ),
    ),
)
ATTRIBUTE_POOLS = (
    (
        _terms("tiny, small, little, broken, wet, old, young"),
        _terms("wooden, metal, heavy, empty, clean"),
    ),
    (
        _terms("tall, long, round, large, big, huge"),
        _terms("red, white, black, green, blue, yellow, brown, bright, dark, golden, soft, wild"),
    ),
)
MOOD_POOLS = (
    (
        _terms("chaos, fear, despair, grief, loneliness"),
        _terms("nostalgia, memory, joy, justice, ambition"),
    ),
    (
        _terms("time, wisdom, love, freedom, eternity"),
        _terms("serenity, harmony, silence, hope, wonder"),
    ),
)
POOL_SLOPE = 1.5  # P(easy pool) = Phi(POOL_SLOPE * ease), P(light-fit pool) likewise


_TOKEN = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?|\d+(?:[.,]\d+)*|[^\w\s]")


def _by_first_word(terms: tuple[str, ...]) -> dict[str, list[tuple[str, ...]]]:
    """Lower-cased word sequences indexed by their first word, longest first."""
    index: dict[str, list[tuple[str, ...]]] = {}
    for seq in sorted((tuple(t.lower().split()) for t in terms), key=len, reverse=True):
        index.setdefault(seq[0], []).append(seq)
    return index


_SPATIAL_SEQS = _by_first_word(SPATIAL_TERMS)
_ENTITY_SEQS = _by_first_word(NAMED_ENTITIES)
_MODIFIER_ROLES = ("det", "adj", "num", "noun")


# ----------------------------------------------------------------------------- extractor


def _match(words: list[str], i: int, seqs: dict[str, list[tuple[str, ...]]]) -> int:
    """Length of the longest sequence in `seqs` starting at words[i] (0 if none)."""
    for seq in seqs.get(words[i], ()):
        if tuple(words[i : i + len(seq)]) == seq:
            return len(seq)
    return 0


def _word_role(word: str, lower: str, prev_role: str | None) -> str:
    if lower.isdigit() or lower[0].isdigit():
        return "num"
    if lower in DETERMINERS:
        return "det"
    if lower in PRONOUNS:
        return "pron"
    if lower in COPULAS:
        return "cop"
    if lower in FUNCTION_WORDS and lower not in NOUNS:
        return "func"
    if lower in ADJECTIVES or lower.endswith(ADJECTIVE_SUFFIXES):
        return "adj"
    if lower in NOUNS:
        return "noun"
    if lower in VERB_FORMS or lower.endswith(("ing", "ed")):
        # a verb form right after a determiner or adjective is a noun or a modifier
        return "noun" if prev_role in ("det", "adj") else "verb"
    return "noun"


def extract_features(text: str) -> dict[str, int]:
    """The 8 HADIS router features of one prompt (approximations documented in the module)."""
    tokens = _TOKEN.findall(text)
    words = [t for t in tokens if t[0].isalnum()]
    lowers = [w.lower() for w in words]
    n_punct = len(tokens) - len(words)
    roles: list[str] = [""] * len(words)
    named_entities = spatial = 0
    i = 0
    while i < len(words):
        length = _match(lowers, i, _ENTITY_SEQS)
        capitalised = i > 0 and words[i][0].isupper() and lowers[i] not in COMMON_WORDS
        if length or capitalised:
            if not length:  # a run of capitalised words is one entity
                length = 1
                while i + length < len(words) and words[i + length][0].isupper():
                    length += 1
            named_entities += 1
            roles[i : i + length] = ["propn"] * length
            i += length
            continue
        length = _match(lowers, i, _SPATIAL_SEQS)
        if length:
            spatial += 1
            roles[i : i + length] = ["prep"] * length
            i += length
            continue
        roles[i] = _word_role(words[i], lowers[i], roles[i - 1] if i else None)
        i += 1
    for j in range(len(words) - 1):  # participles modifying the next noun are attributes
        if roles[j] == "verb" and lowers[j].endswith("ed") and roles[j + 1] == "noun":
            roles[j] = "adj"
    has_predicate = any(r in ("verb", "cop") for r in roles)
    objects = 0
    for j, role in enumerate(roles):
        next_role = roles[j + 1] if j + 1 < len(roles) else None
        if role not in ("noun", "pron", "propn") or next_role == role:
            continue  # not the head of its noun phrase
        k = j - 1
        while k >= 0 and roles[k] in (*_MODIFIER_ROLES, role):
            k -= 1
        if (k >= 0 and roles[k] == "prep") or has_predicate:
            objects += 1
    return {
        "prompt_length": len(words),
        "token_rarity": n_punct
        + sum(1 for w, r in zip(lowers, roles) if r != "num" and w not in COMMON_WORDS),
        "num_objects": objects,
        "abstractness": sum(1 for w in lowers if w in ABSTRACT_WORDS),
        "attribute_density": roles.count("adj"),
        "spatial_relations": spatial,
        "action_verbs": roles.count("verb"),
        "named_entities": named_entities,
    }


def feature_table(texts: list[str]) -> pd.DataFrame:
    """One row of the 8 router features (int64) per text, in `ROUTER_FEATURES` order."""
    rows = [extract_features(t) for t in texts]
    return pd.DataFrame(rows, columns=list(ROUTER_FEATURES)).astype(np.int64)


def router_score(
    features: pd.DataFrame, weights: tuple[float, ...] = HADIS_ROUTER_WEIGHTS
) -> np.ndarray:
    """HADIS rule-based router score: z-score each feature over the prompt set (pandas std,
    ddof=1; a constant feature contributes 0) and dot with `weights`."""
    values = features.loc[:, list(ROUTER_FEATURES)].astype(np.float64)
    std = values.std(ddof=1).replace(0.0, 1.0).fillna(1.0)
    z = (values - values.mean()) / std
    return z.to_numpy() @ np.asarray(weights, dtype=np.float64)


# ----------------------------------------------------------------------------- generator


def _pick(rng: np.random.Generator, words: tuple[str, ...]) -> str:
    return words[int(rng.integers(len(words)))]


class _ContentPicker:
    """Picks a prompt's content words: the pool from its own RNG stream (easy with probability
    Phi(`POOL_SLOPE` * ease), light-fit with probability Phi(`POOL_SLOPE` * light_fit),
    independently), the word in it from a `slot` in [0, 1) that the structure stream draws as
    before the pools existed; so structure, hardness and router features never depend on ease
    or light fit."""

    def __init__(self, rng: np.random.Generator, p_easy: float, p_light_fit: float) -> None:
        self.rng = rng
        self.p_easy = p_easy
        self.p_light_fit = p_light_fit

    def pick(
        self, pools: tuple[tuple[tuple[str, ...], ...], ...], slot: float, exclude=()
    ) -> str:
        easy = self.rng.random() < self.p_easy
        light_fit = self.rng.random() < self.p_light_fit
        words = [w for w in pools[easy][light_fit] if w not in exclude]
        return words[int(slot * len(words))]


def _noun_phrase(
    rng: np.random.Generator, content: _ContentPicker, h: float, rare_p: float
) -> str:
    if rng.random() < rare_p:
        noun = _pick(rng, RARE_OBJECTS)
    else:
        noun = content.pick(OBJECT_POOLS, rng.integers(len(COMMON_OBJECTS)) / len(COMMON_OBJECTS))
    n_attrs = min(int(rng.poisson(0.45 * np.exp(0.5 * h))), 3)
    n_common = len(COMMON_ATTRIBUTES)
    slots = [
        _pick(rng, RARE_ATTRIBUTES) if rng.random() < rare_p else rng.integers(n_common) / n_common
        for _ in range(n_attrs)
    ]
    attrs: list[str] = []
    for word in slots:  # a repeated rare attribute is dropped; common ones are drawn distinct
        if not isinstance(word, str):
            attrs.append(content.pick(ATTRIBUTE_POOLS, word, exclude=attrs))
        elif word not in attrs:
            attrs.append(word)
    words = [*attrs, noun]
    det = "a" if rng.random() < 0.75 else "the"
    if det == "a" and words[0][0] in "aeiou":
        det = "an"
    return " ".join((det, *words))


def _prompt(rng: np.random.Generator, content: _ContentPicker, h: float) -> str:
    rare_p = min(0.6, 0.05 * np.exp(0.8 * h))
    n_objects = 1 + min(int(rng.poisson(1.3 * np.exp(0.3 * h))), 4)
    parts = [_pick(rng, FRAMES)] if rng.random() < 0.3 else []
    parts.append(_noun_phrase(rng, content, h, rare_p))
    if rng.random() < min(0.9, 0.4 * np.exp(0.5 * h)):
        verb = _pick(rng, ACTION_VERBS)
        third, ing, _ = _inflections(verb)
        parts.append(third if rng.random() < 0.5 else ing)
        if verb in TRANSITIVE_VERBS and n_objects > 1:
            parts.append(_noun_phrase(rng, content, h, rare_p))
            n_objects -= 1
    elif rng.random() < 0.25:
        verb = _pick(rng, ("is", "looks"))
        slot = rng.integers(len(COMMON_ATTRIBUTES)) / len(COMMON_ATTRIBUTES)
        parts += [verb, content.pick(ATTRIBUTE_POOLS, slot)]
    for _ in range(n_objects - 1):
        relation = _pick(rng, LOCATIVE_TERMS) if rng.random() < 0.85 else "and"
        parts += [relation, _noun_phrase(rng, content, h, rare_p)]
    for _ in range(min(int(rng.poisson(0.12 * np.exp(0.8 * h))), 2)):
        pattern = _pick(rng, ABSTRACT_PATTERNS)
        slot = rng.integers(len(ABSTRACT_NOUNS)) / len(ABSTRACT_NOUNS)
        parts.append(pattern.format(content.pick(MOOD_POOLS, slot)))
    if rng.random() < min(0.5, 0.03 * np.exp(h)):
        entity = _pick(rng, NAMED_ENTITIES)
        parts.append(f"in {entity}" if entity in PLACES else f"in the style of {entity}")
    return " ".join(parts)


def generate_prompts(
    n_prompts: int,
    seed: int | np.random.SeedSequence,
    ease: np.ndarray | None = None,
    light_fit: np.ndarray | None = None,
) -> tuple[list[str], np.ndarray]:
    """`n_prompts` compositional prompts and their latent hardness h ~ N(0, 1) (seeded).

    `ease` and `light_fit` (one value per prompt each, default 0 = no lean) shift each
    prompt's content words towards the easy / light-fit pools (positive) or the hard /
    heavy-needing pools (negative). Structure, hardness and router features depend on `seed`
    only: the content words come from a second RNG stream derived from `seed`."""
    if n_prompts < 1:
        raise ValueError(f"n_prompts must be >= 1, got {n_prompts}")
    leans = []
    for name, lean in (("ease", ease), ("light_fit", light_fit)):
        lean = np.zeros(n_prompts) if lean is None else np.asarray(lean, dtype=np.float64)
        if lean.shape != (n_prompts,) or not np.isfinite(lean).all():
            raise ValueError(f"{name} must be {n_prompts} finite values, got shape {lean.shape}")
        leans.append(lean)
    root = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    content_seed = np.random.SeedSequence(root.entropy, spawn_key=(*root.spawn_key, 0))
    rng = np.random.default_rng(root)  # structure and hardness
    content_rng = np.random.default_rng(content_seed)
    hardness = rng.standard_normal(n_prompts)
    p_easy, p_light_fit = (stats.norm.cdf(POOL_SLOPE * lean).tolist() for lean in leans)
    texts = [
        _prompt(rng, _ContentPicker(content_rng, e, f), float(h))
        for h, e, f in zip(hardness, p_easy, p_light_fit, strict=True)
    ]
    return texts, hardness
