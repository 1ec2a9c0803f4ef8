"""The diffusers backend end to end on CPU: a tiny bundle made by the profiler (two random-init
tiny pipelines, its CLIP discriminator), served on 2 CPU replicas through the ingress. The
images are the pipelines' (the profiler's seeds, pixel for pixel), each quality score is the
discriminator's P(real) of the light model's image and decides the escalation, and a replay's
outcomes add up to its arrivals."""

from __future__ import annotations

import base64
import dataclasses
import io
import re
import socket

import numpy as np
import pytest

pytest.importorskip("ray.serve")
pytest.importorskip("diffusers")
pytest.importorskip("open_clip")

import httpx  # noqa: E402
from PIL import Image  # noqa: E402

from profiler.discriminator import load_discriminator, p_real  # noqa: E402
from profiler.generate import image_seed, render  # noqa: E402
from profiler.latency import LatencyTiming  # noqa: E402
from profiler.layout import WorkLayout  # noqa: E402
from profiler.sharding import PipelineSource  # noqa: E402
from profiler.workflow import run_all, tiny_plan, write_smooth_images  # noqa: E402
from serving.loadgen import run_loadgen  # noqa: E402
from serving.server import ServeSession  # noqa: E402
from serving.setup import ServeSetup  # noqa: E402
from simulator.core import PlanState  # noqa: E402
from simulator.errors import InputError  # noqa: E402
from simulator.policy import Plan  # noqa: E402

LIGHT, HEAVY = "tiny-light", "tiny-heavy"


def _word_counts(texts):
    """Router features without the spaCy extractor (the serving path is under test)."""
    return np.asarray(
        [[len(t.split()), sum(len(w) > 6 for w in t.split()), 1, 0, 0, 0, 0, 0] for t in texts],
        dtype=np.int64,
    )


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """`profile all --tiny`, cut down: light and heavy only, 4 prompts, 1 image each."""
    layout = WorkLayout(tmp_path_factory.mktemp("work"))
    write_smooth_images(layout.real_images, 8, 32, seed=0)
    plan = tiny_plan(layout, n_prompts=4, seed=0)
    plan = dataclasses.replace(
        plan,
        models=(plan.models[0], plan.models[2]),
        prompt_features=_word_counts,
        batch_sizes=(1, 2),
        # two rounds: a spread for `validate --profile-rounds`; timed after idle too: the
        # latency after idle that validate simulates (test_validation_diffusers)
        timing=LatencyTiming(0, 1, rounds=2, idle_gap_s=0.05),
        images_per_prompt=1,
    )
    run_all(plan, layout, "tiny-serve", prune_models=False)
    return layout


SETUP_OPTIONS = {"light": LIGHT, "heavy": HEAVY, "router_ratio": 0.25, "disc_ratio": 0.5}
PIPELINES = {LIGHT: ("tiny:1:8", 1), HEAVY: ("tiny:3:16", 4)}  # tiny_plan(seed=0): source, steps


@pytest.fixture(scope="module")
def setup(work):
    return ServeSetup(
        str(work.bundle),
        "static-cascade",
        SETUP_OPTIONS,
        {"n_workers": 2, "slo_s": 120.0},
        backend="diffusers",
    )


@pytest.fixture(scope="module")
def session(setup):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with ServeSession(setup, port=port, num_cpus=2) as served:
        yield served


def _pixels(b64: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGB"))


def _made_here(model: str, text: str, seed: int) -> np.ndarray:
    source, steps = PIPELINES[model]
    pipe = PipelineSource(source, "fp32").load("cpu")
    return render(pipe, [text], [seed], steps=steps, resolution=32)[0]


def test_replicas_generate_with_the_pipelines_and_score_with_the_clip_discriminator(
    work, setup, session
):
    bundle, policy, _ = setup.build()
    state = httpx.get(session.url + "/v1/t2isim/state", timeout=30).json()
    fields = state["plans"][-1]["plan"]
    plan = Plan(
        **{**fields, "stages": tuple(fields["stages"]), "disc_ratios": tuple(fields["disc_ratios"])}
    )
    assert plan.workers == {LIGHT: 1, HEAVY: 1}
    decide = PlanState.from_plan(
        plan, bundle.model_index, policy.router_scores, policy.quality_scores
    )
    light = bundle.model_index(LIGHT)
    prompt = int(np.argmin(policy.router_scores))  # never bypassed
    text = bundle.prompts["text"][prompt]
    generations = session.url + "/v1/images/generations"
    refused = httpx.post(generations, json={"prompt": text, "size": "256x256"}, timeout=30)
    assert refused.status_code == 422  # never an image of another size than asked for
    assert refused.json()["error"]["param"] == "size" and "32x32" in refused.text
    response = httpx.post(generations, json={"prompt": text, "n": 2, "size": "32x32"}, timeout=300)
    assert response.status_code == 200, response.text
    body = response.json()
    backbone, head = load_discriminator(work.discriminator)
    served = [_pixels(d["b64_json"]) for d in body["data"]]
    assert not np.array_equal(served[0], served[1])  # image k has the seed of (prompt, k)
    for k, rec in enumerate(body["t2isim"]["images"]):
        assert served[k].shape == (32, 32, 3) and served[k].std() > 0
        assert rec["first_model"] == light and not rec["bypassed"]
        # the light model's image made here with the profiler's seed, scored by the CLIP
        # discriminator, is the replica's score; the plan's tau turns it into the decision
        seed = image_seed(0, prompt, k)
        score = float(p_real(backbone, head, [Image.fromarray(_made_here(LIGHT, text, seed))])[0])
        assert rec["quality_score"] == pytest.approx(score, abs=1e-3)
        assert rec["escalated"] == (score < decide.tau_of[light])
        final = bundle.model_names[rec["final_model"]]
        assert final == (HEAVY if rec["escalated"] else LIGHT)
        difference = served[k].astype(int) - _made_here(final, text, seed)
        assert np.abs(difference).max() <= 2  # the final model's pipeline made the image


def test_a_replay_on_the_diffusers_backend_accounts_for_every_query(session, tmp_path):
    summary = run_loadgen("constant:rate=2,duration=2", session.url, tmp_path / "real")
    session.check()
    assert summary["arrivals"] == 4 and summary["failed"] == 0
    assert summary["ok"] + summary["timeouts"] + summary["drops"] == 4
    assert summary["ok"] >= 3


def test_backend_inputs_are_one_line_errors_before_ray_starts(work, tmp_path):
    import torch

    from profiler.generate import read_prompts

    state = torch.load(work.discriminator, weights_only=True)
    state["training_prompts"] = read_prompts(work.prompts_txt)[2:3]  # one bundle prompt
    torch.save(state, tmp_path / "in-sample.pt")
    sim = {"n_workers": 2, "slo_s": 120.0}
    tiny = ServeSetup(str(work.bundle), "static-cascade", SETUP_OPTIONS, sim, backend="diffusers")
    assert ServeSetup.from_dict(tiny.to_dict()) == tiny
    legacy = {
        k: v for k, v in tiny.to_dict().items() if k in ("bundle", "policy", "options", "sim")
    }
    assert ServeSetup.from_dict(legacy).backend == "emulated"  # a setup from before backends
    cases = [
        (
            dataclasses.replace(
                tiny, bundle="default", options={"light": "SDXL-Lightning", "heavy": "SD3.5-Large"}
            ),
            "model 'SDXL-Lightning' has no source_model",
        ),
        (dataclasses.replace(tiny, sim={**sim, "time_scale": 0.1}), "--time-scale 0.1: the diff"),
        (dataclasses.replace(tiny, discriminator="/no/such.pt"), "--discriminator '/no/such.pt'"),
        (
            dataclasses.replace(tiny, discriminator=str(tmp_path / "in-sample.pt")),
            "in-sample.pt': the discriminator was trained on 1 of these prompts (first: prompt 2",
        ),
        (dataclasses.replace(tiny, backend="gpu"), "--backend 'gpu': expected one of emulated"),
        (dataclasses.replace(tiny, dispatch="fastest"), "--dispatch 'fastest': expected one of"),
    ]
    for setup, message in cases:
        with pytest.raises(InputError, match=re.escape(message)):
            setup.build()


def test_thread_preemptions_count_this_threads_involuntary_switches(monkeypatch):
    """Linux counts them per thread (non-decreasing); elsewhere there is no count (None)."""
    import resource

    from serving import diffusers_backend

    if hasattr(resource, "RUSAGE_THREAD"):
        before = diffusers_backend.thread_preemptions()
        sum(range(200_000))
        after = diffusers_backend.thread_preemptions()
        assert isinstance(before, int) and 0 <= before <= after
    monkeypatch.delattr(resource, "RUSAGE_THREAD", raising=False)
    assert diffusers_backend.thread_preemptions() is None
