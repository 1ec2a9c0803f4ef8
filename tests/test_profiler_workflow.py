"""`profile all --tiny` end to end on CPU: every step, then the simulator's bundle loader."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("open_clip")

from tiny_profile import run_tiny_profile  # noqa: E402

from profiler.discriminator import DiscriminatorError, training_prompts  # noqa: E402
from profiler.generate import read_prompts  # noqa: E402
from profiler.layout import WorkLayout  # noqa: E402
from profiler.steps import StepError, build_bundle  # noqa: E402
from simulator.bundle import ROUTER_FEATURES, load_bundle  # noqa: E402


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    return run_tiny_profile(tmp_path_factory.mktemp("work"), "tiny-test")


def test_tiny_run_writes_a_loadable_bundle(tiny_run):
    layout, path = tiny_run
    bundle = load_bundle(path)
    assert bundle.n_prompts == 8
    assert set(bundle.model_names) == {"tiny-light", "tiny-mid", "tiny-heavy"}
    assert bundle.meta["images_per_prompt"] == 2
    assert bundle.meta["router"]["features"] == list(ROUTER_FEATURES)
    assert bundle.disc_score.shape == (8, 3)
    assert ((0 <= bundle.disc_score) & (bundle.disc_score <= 1)).all()
    assert len(bundle.pairs()) == 3 and len(bundle.cascades) == 3 * 121
    for light, heavy in bundle.pairs():  # light is the faster model of each pair
        assert bundle.batch_latency_s(light, 1) <= bundle.batch_latency_s(heavy, 1)
    # r = 1 serves every prompt on heavy: FID equals the heavy model's FID alone
    fid_alone = bundle.models.set_index("model")["fid_alone"]
    rows = bundle.cascades[bundle.cascades.router_ratio == 1.0]
    np.testing.assert_allclose(rows["fid"], fid_alone[rows["heavy"]].to_numpy(), rtol=1e-9)
    for model in bundle.model_names:
        assert len(list(layout.images(model).glob("*.png"))) == 16
        assert len(list(layout.discriminator_training.images(model).glob("*.png"))) == 16
    # the discriminator trained on images of other prompts than the bundle's, and says which
    trained_on = training_prompts(layout.discriminator)
    assert len(trained_on) == 8 and not set(trained_on) & set(bundle.prompts["text"])
    assert trained_on == tuple(read_prompts(layout.discriminator_training.prompts_txt))
    # the discriminator's cost per batch size, timed as a worker pays it
    timing = bundle.meta["discriminator_latency"]
    assert timing["batch_size"] == [1, 2] and timing["n_repeats"] == [1, 1]
    assert all(0 < t < 10 for t in timing["latency_p50_s"])
    assert layout.discriminator_latency_csv.is_file()


def test_rebuilding_the_table_is_byte_identical(tiny_run, tmp_path):
    from simulator.bundle import write_bundle

    layout, path = tiny_run
    again = write_bundle(build_bundle(layout, "tiny-test", prune_models=False), tmp_path / "again")
    for file in ("cascades.csv", "models.csv", "prompts.csv", "scores.csv", "bundle.json"):
        assert (again / file).read_bytes() == (path / file).read_bytes(), file


def test_a_prompts_score_is_the_mean_over_its_images_or_its_first_images(tiny_run):
    import pandas as pd

    layout, path = tiny_run
    mean = load_bundle(path)
    first = build_bundle(layout, "tiny-test", prune_models=False, prompt_score="first-image")
    assert "prompt_score" not in mean.meta and first.meta["prompt_score"] == "first-image"
    for m, model in enumerate(first.model_names):
        images = pd.read_csv(layout.scores(model)).sort_values(["prompt_id", "image_idx"])
        per_image = images["p_real"].to_numpy().reshape(8, 2)
        np.testing.assert_allclose(first.disc_score[:, m], per_image[:, 0], atol=1e-9)
        np.testing.assert_allclose(mean.disc_score[:, m], per_image.mean(axis=1), atol=1e-9)
    assert not np.allclose(first.disc_score, mean.disc_score)  # the two images differ
    with pytest.raises(StepError, match="prompt score 'median': expected one of mean, "):
        build_bundle(layout, "tiny-test", prune_models=False, prompt_score="median")


def test_build_bundle_reports_missing_scores(tiny_run, tmp_path):
    import shutil

    layout, _ = tiny_run
    copy = WorkLayout(tmp_path / "copy")
    shutil.copytree(layout.root, copy.root)
    copy.scores("tiny-mid").unlink()
    with pytest.raises(StepError, match="tiny-mid.csv: scores missing"):
        build_bundle(copy, "broken", prune_models=False)


def test_the_profiles_measured_shapes_go_into_the_bundle_for_its_batch_sizes(tiny_run, tmp_path):
    import json
    import re
    import shutil

    from profiler.latency import LatencyError
    from simulator.bundle import BundleError, write_bundle
    from simulator.empirical_shape import SHAPE_LEVELS

    layout, _ = tiny_run
    copy = WorkLayout(tmp_path / "copy")
    shutil.copytree(layout.root, copy.root)
    sidecar_path = copy.latency_csv("tiny-light").with_suffix(".json")
    sidecar = json.loads(sidecar_path.read_text())
    two_modes = [0.5] * 50 + [1.0] + [2.0] * 50
    # batch size 4 was not profiled (the fixture times 1 and 2): the bundle has no row for it
    sidecar.update(shapes={"1": two_modes, "4": two_modes}, shape_calls="after idle")
    sidecar_path.write_text(json.dumps(sidecar))
    bundle = build_bundle(copy, "shaped", prune_models=False)
    assert bundle.latency_shape == {("tiny-light", 1): tuple(two_modes)}
    assert "shapes" not in bundle.meta["latency_profiles"]["tiny-light"]
    again = load_bundle(write_bundle(bundle, tmp_path / "b"))
    assert again.latency_shape == bundle.latency_shape
    assert again.shapes["level"].tolist() == list(SHAPE_LEVELS)
    # a shape that falls is the bundle's one-line error, naming the model and batch size
    sidecar["shapes"] = {"1": two_modes[::-1]}
    sidecar_path.write_text(json.dumps(sidecar))
    with pytest.raises(BundleError, match="latency 'tiny-light' batch size 1 decreases"):
        build_bundle(copy, "shaped", prune_models=False)
    for bad, problem in (
        ({"1": "fast"}, "shape of batch size 1: expected a list of 101 numbers"),
        ({"1": two_modes[:100]}, "shape of batch size 1: expected a list of 101 numbers"),
        ({"one": two_modes}, "shapes: expected {batch size: [ratio, ...]}"),
        ([two_modes], "shapes: expected {batch size: [ratio, ...]}"),
    ):
        sidecar["shapes"] = bad
        sidecar_path.write_text(json.dumps(sidecar))
        with pytest.raises(LatencyError, match=re.escape(f"'tiny-light': {problem}")):
            build_bundle(copy, "shaped", prune_models=False)


def test_cli_build_table_and_fid(tiny_run, tmp_path):
    from typer.testing import CliRunner

    from profiler.cli import profile_app

    layout, path = tiny_run
    runner = CliRunner()
    args = ["build-table", "--name", "tiny-test", "--work", str(layout.root)]
    result = runner.invoke(profile_app, [*args, "--out", str(tmp_path / "b"), "--no-prune-models"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "b" / "cascades.csv").read_bytes() == (path / "cascades.csv").read_bytes()
    features = str(layout.features("tiny-heavy"))
    result = runner.invoke(
        profile_app, ["fid", "--features", features, "--reference", str(layout.reference_stats)]
    )
    assert result.exit_code == 0, result.output
    fid_alone = load_bundle(path).models.set_index("model").loc["tiny-heavy", "fid_alone"]
    assert float(result.output) == pytest.approx(fid_alone, abs=1e-4)
    result = runner.invoke(profile_app, ["all", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "--tiny" in result.output
    result = runner.invoke(profile_app, [*args, "--prompt-score", "median"])
    assert result.exit_code == 2 and "'median': expected one of mean," in result.output


def test_cli_profile_all_tiny_end_to_end_with_latency_rounds_and_idle_gap(tmp_path):
    """`profile all --tiny` through the CLI; the latency of every model timed in rounds and
    after an idle gap, which the bundle carries."""
    from typer.testing import CliRunner

    from profiler.cli import profile_app
    from profiler.latency import read_latency_profile

    args = ["all", "--tiny", "--out", str(tmp_path / "w"), "--prompts", "2"]
    timing = ["--latency-rounds", "2", "--latency-idle-gap-s", "0.02", "--latency-repeats", "4"]
    result = CliRunner().invoke(profile_app, [*args, *timing])
    assert result.exit_code == 0, result.output
    layout = WorkLayout(tmp_path / "w")
    bundle = load_bundle(layout.root / "bundle")
    assert bundle.n_prompts == 2 and bundle.idle_gap_s == (0.02, 0.02, 0.02)
    assert (bundle.latency["latency_idle_p50_s"] > 0).all()
    for model in ("tiny-light", "tiny-mid", "tiny-heavy"):
        table, _ = read_latency_profile(layout.latency_csv(model))
        assert table["n_rounds"].tolist() == [2, 2, 2] and table["n_repeats"].tolist() == [4] * 3
        assert table["idle_gap_s"].tolist() == [0.02] * 3
    assert bundle.shapes is None  # 8 calls after idle per size: too few for a shape
    result = CliRunner().invoke(profile_app, [*args, "--latency-idle-gap-s", "-1"])
    assert result.exit_code == 2 and "--latency-idle-gap-s" in result.output


def test_cli_score_times_the_discriminator_at_the_given_batch_sizes(tiny_run, tmp_path):
    import shutil

    from typer.testing import CliRunner

    from profiler.cli import profile_app

    layout, _ = tiny_run
    work = WorkLayout(tmp_path / "work")  # a copy: the shared run's files stay as they are
    shutil.copytree(layout.root, work.root)
    runner = CliRunner()
    args = ["score", "--work", str(work.root), "--device", "cpu"]
    result = runner.invoke(profile_app, [*args, "--disc-batch-sizes", "1,3"])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(work.discriminator_latency_csv)
    assert table["batch_size"].tolist() == [1, 3]
    assert (table["latency_p95_s"] >= table["latency_p50_s"]).all()
    result = runner.invoke(profile_app, [*args, "--disc-batch-sizes", "0,2"])
    assert result.exit_code == 2 and "--disc-batch-sizes" in result.output


def test_the_discriminator_trains_only_on_prompts_the_bundle_lacks(tiny_run, tmp_path):
    import shutil

    from typer.testing import CliRunner

    from profiler.cli import profile_app
    from profiler.steps import write_prompts

    layout, _ = tiny_run
    work = WorkLayout(tmp_path / "work")  # a copy: the shared run's files stay as they are
    shutil.copytree(layout.root, work.root)
    runner = CliRunner()
    train = ["train-discriminator", "--work", str(work.root), "--real", str(work.real_images)]
    train += ["--clip-model", "ViT-B-32", "--epochs", "1"]  # refused before CLIP loads
    # one bundle prompt among the training prompts: refused before any training
    texts = read_prompts(work.discriminator_training.prompts_txt)
    bundle_prompt = read_prompts(work.prompts_txt)[3]
    write_prompts(work.discriminator_training, [bundle_prompt, *texts[1:]])
    before = work.discriminator.read_bytes()
    result = runner.invoke(profile_app, train)
    assert result.exit_code == 2
    assert f"trained on 1 of these prompts (first: prompt 3, {bundle_prompt!r})" in result.output
    assert work.discriminator.read_bytes() == before
    # ... and a discriminator that did train on it does not score it
    score = ["score", "--work", str(work.root), "--disc-batch-sizes", "1", "--device", "cpu"]
    write_prompts(work, [texts[0], *read_prompts(work.prompts_txt)[1:]])
    result = runner.invoke(profile_app, score)
    assert result.exit_code == 2
    assert "trained on 1 of these prompts (first: prompt 0" in result.output
    # no training images: one line naming the folder to generate them in
    shutil.rmtree(work.discriminator_training.root)
    result = runner.invoke(profile_app, train)
    assert result.exit_code == 2
    assert "discriminator-training/prompts.txt: no training" in result.output
    with pytest.raises(DiscriminatorError):
        training_prompts(tmp_path / "missing.pt")
