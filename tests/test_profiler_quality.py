"""Image features, CLIPScore and the CLIP discriminator with tiny random-init networks."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")
pytest.importorskip("open_clip")

from PIL import Image  # noqa: E402

from profiler.discriminator import (  # noqa: E402
    DiscriminatorError,
    check_held_out,
    load_discriminator,
    p_real,
    save_discriminator,
    train_discriminator,
    training_prompts,
)
from profiler.frechet import FeatureError  # noqa: E402
from profiler.generate import image_name  # noqa: E402
from profiler.inception import (  # noqa: E402
    clean_resize,
    extract_features,
    generated_features,
    inception_extractor,
    load_features,
    save_features,
    tiny_extractor,
)
from profiler.openclip import (  # noqa: E402
    TINY_CLIP,
    clip_scores,
    image_embeddings,
    load_clip,
    text_embeddings,
)


def _write(folder, n, kind, seed, size=32, named=False):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        if kind == "smooth":
            coarse = rng.uniform(0, 255, size=(2, 2, 3)).astype(np.uint8)
            image = Image.fromarray(coarse).resize((size, size), Image.BILINEAR)
        else:
            image = Image.fromarray(rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8))
        path = folder / (image_name(i // 2, i % 2) if named else f"{i:03d}.png")
        image.save(path)
        paths.append(path)
    return paths


def test_clean_resize_is_float_bicubic(tmp_path):
    path = tmp_path / "x.png"
    Image.fromarray(np.full((20, 30, 3), 128, np.uint8)).save(path)
    out = clean_resize(path, 299)
    assert out.shape == (3, 299, 299) and out.dtype == np.float32
    np.testing.assert_allclose(out, 128 / 255, atol=1e-5)  # a flat image stays flat


def test_tiny_features_are_deterministic_and_stored_per_image(tmp_path):
    _write(tmp_path / "gen", 6, "noise", 0, named=True)
    extractor = tiny_extractor(seed=3, dim=8)
    features, names = generated_features(extractor, tmp_path / "gen", batch_size=4)
    assert features.shape == (3, 2, 8) and names[1, 0] == image_name(1, 0)
    again, _ = generated_features(tiny_extractor(seed=3, dim=8), tmp_path / "gen")
    np.testing.assert_array_equal(features, again)
    path = save_features(tmp_path / "f.npz", features, names, extractor.name)
    loaded, loaded_names, name = load_features(path)
    np.testing.assert_array_equal(loaded, features)
    assert name == extractor.name and loaded_names.tolist() == names.tolist()
    with pytest.raises(FeatureError, match="not found"):
        load_features(tmp_path / "missing.npz")


@pytest.mark.slow
def test_inception_pool_features_have_2048_dims(tmp_path):
    paths = _write(tmp_path / "imgs", 2, "smooth", 1)
    features = extract_features(inception_extractor(None), paths)
    assert features.shape == (2, 2048) and np.isfinite(features).all()
    with pytest.raises(FeatureError, match="not found"):
        inception_extractor(str(tmp_path / "no-weights.pth"))


@pytest.fixture(scope="module")
def backbone():
    return load_clip(TINY_CLIP, None, "cpu", seed=0)


def test_clip_scores_are_cosines(backbone, tmp_path):
    paths = _write(tmp_path / "imgs", 3, "smooth", 2)
    images = image_embeddings(backbone, paths)
    texts = text_embeddings(backbone, ["a cat", "a dog", "a house"])
    scores = clip_scores(images, texts)
    assert scores.shape == (3,) and (np.abs(scores) <= 1 + 1e-6).all()
    np.testing.assert_allclose(scores[0], images[0] @ texts[0], rtol=1e-6)
    with pytest.raises(ValueError, match="row-aligned"):
        clip_scores(images, texts[:2])


def test_discriminator_learns_real_vs_generated_and_roundtrips(backbone, tmp_path):
    real = _write(tmp_path / "real", 40, "smooth", 3)
    fake = _write(tmp_path / "fake", 40, "noise", 4)
    prompts = ["a cat", "a dog"]
    disc = train_discriminator(
        backbone, real, fake, prompts, epochs=40, hidden=32, batch_size=16, seed=0
    )
    assert disc.validation_accuracy >= 0.9 and disc.training_prompts == ("a cat", "a dog")
    scores_real, scores_fake = p_real(backbone, disc.head, real), p_real(backbone, disc.head, fake)
    assert ((0 <= scores_real) & (scores_real <= 1)).all()
    assert scores_real.mean() > scores_fake.mean() + 0.3
    saved = save_discriminator(disc, tmp_path / "d.pt")
    loaded_backbone, head = load_discriminator(saved)
    np.testing.assert_allclose(p_real(loaded_backbone, head, real[:5]), scores_real[:5], rtol=1e-6)
    assert training_prompts(saved) == ("a cat", "a dog")
    with pytest.raises(DiscriminatorError, match="need real and generated"):
        train_discriminator(backbone, real, [], prompts)
    with pytest.raises(DiscriminatorError, match="prompts are not given"):
        train_discriminator(backbone, real, fake, [])


def test_a_checkpoint_without_its_training_prompts_is_refused(backbone, tmp_path):
    import torch

    real = _write(tmp_path / "real", 4, "smooth", 3)
    fake = _write(tmp_path / "fake", 4, "noise", 4)
    disc = train_discriminator(backbone, real, fake, ["a cat"], epochs=1, hidden=4, seed=0)
    state = torch.load(save_discriminator(disc, tmp_path / "d.pt"), weights_only=True)
    del state["training_prompts"]  # a checkpoint saved before the prompts were recorded
    torch.save(state, tmp_path / "old.pt")
    for read in (load_discriminator, training_prompts):
        with pytest.raises(DiscriminatorError, match="missing fields training_prompts .re-train"):
            read(tmp_path / "old.pt")


def test_the_discriminator_never_scores_a_prompt_it_trained_on():
    check_held_out(["a cat", "a dog"], ["a car", "a tree"], "prompts.txt")
    with pytest.raises(DiscriminatorError, match=r"prompts.txt: .* trained on 1 of these prompts "
                       r"\(first: prompt 1, 'a dog'\)"):
        check_held_out(["a cat", "a dog"], ["a car", "a dog"], "prompts.txt")


def test_the_validation_split_holds_out_whole_prompts():
    """Labels that only a sample's twin can tell (random per group): held out per sample, the
    twins in training give the answer away; held out per group, nothing does."""
    from profiler.discriminator import train_head

    rng = np.random.default_rng(1)
    n_groups, twins = 40, 5
    centres = rng.normal(size=(n_groups, 16))
    embeddings = np.repeat(centres, twins, axis=0) + 0.01 * rng.normal(size=(n_groups * twins, 16))
    labels = np.repeat(rng.permutation(np.arange(n_groups) % 2), twins)
    groups = np.repeat(np.arange(n_groups), twins)
    kwargs = dict(hidden=64, epochs=200, batch_size=32, lr=1e-2, seed=0)
    _, per_sample = train_head(embeddings, labels, **kwargs)
    _, per_group = train_head(embeddings, labels, groups=groups, **kwargs)
    assert per_sample >= 0.9 and per_group <= 0.75
