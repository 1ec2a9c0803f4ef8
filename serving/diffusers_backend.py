"""The diffusers backend: a worker runs the profiled model's real pipeline and the profiler's
CLIP discriminator (HADIS §4.3) on its own device, with the profiler's own loading and
generation code (`profiler.sharding.PipelineSource`, `profiler.generate.render`,
`profiler.discriminator`).

Which pipeline a bundle model is comes from the bundle's latency profiles (`source_model`,
`steps`, `resolution`, `dtype`, `guidance_scale`, written by `t2isim profile`): a local
folder, a Hugging Face id (cache only under HF_HUB_OFFLINE=1) or `tiny:<seed>:<width>`, a
random-init tiny pipeline built from a small config (CPU, no hub access). Real models get one
GPU per worker; tiny ones run on CPU with a CPU worker's torch threads each
(`profiler.cpu_threads`, as `profile latency` times them). The discriminator is
the profiler's checkpoint (default: `discriminator.pt` of the work folder that holds the
bundle, `profiler.layout.WorkLayout`).

A model swap in a worker loads the pipeline and the discriminator: it costs the real load
time. Image k of a request for prompt p is drawn with the profiler's seed of (p, k), so it is
the image `profile generate` made for that pair. Its quality score is the discriminator's
P(real) of that image, computed when the plan may escalate the model's images (`scored`).
"""

from __future__ import annotations

import asyncio
import resource
import time
from dataclasses import dataclass
from pathlib import Path

from serving.emulated import REPLICA_CPUS
from simulator.errors import InputError

TINY_PREFIX = "tiny:"
PROFILE_KEYS = ("source_model", "steps", "resolution")


@dataclass(frozen=True)
class DiffusersModel:
    name: str
    source: object  # profiler.sharding.PipelineSource
    steps: int
    resolution: int
    prompts: tuple[str, ...]  # the bundle's prompt texts, by prompt_id
    seed: int
    discriminator: str  # checkpoint path
    device: str  # cpu (tiny models) or cuda (one GPU per worker)
    latency_s: tuple[float, ...]  # the bundle's batch latencies (the drop rule's estimate)
    load_s: float  # the bundle's profiled load time (the GPU-busy account of a swap)

    @property
    def image_size(self) -> str:
        """What its images measure (`WxH`): the profiled resolution."""
        return f"{self.resolution}x{self.resolution}"

    @property
    def actor_options(self) -> dict:
        if self.device == "cpu":  # threads are pinned (profiler.cpu_threads), not reserved
            return {"num_cpus": REPLICA_CPUS}
        return {"num_cpus": 1, "num_gpus": 1}

    async def start(self, load_from_s: float, preloaded: bool = False) -> DiffusersEngine:
        """The model swap: load the pipeline and the discriminator, taking the real load time
        from now, the initial deployment's too (`load_from_s` and `preloaded` are the emulated
        backend's)."""
        return await asyncio.to_thread(DiffusersEngine, self)


class DiffusersEngine:
    def __init__(self, model: DiffusersModel) -> None:
        from profiler.cpu_threads import worker_threads
        from profiler.discriminator import load_discriminator

        self.model = model
        with worker_threads(model.device):  # as `profile latency` times the load
            self.pipe = model.source.load(model.device)
            self.backbone, self.head = load_discriminator(model.discriminator, model.device)

    async def run(
        self, jobs: list[tuple[int, int]], judged: bool, scored: bool
    ) -> tuple[list, float, int | None]:
        return await asyncio.to_thread(self.generate, jobs, scored)

    def generate(self, jobs: list[tuple[int, int]], scored: bool) -> tuple[list, float, int | None]:
        """(P(real) or None, base64 PNG) per (prompt_id, image_idx) job, one pipeline batch; the
        CPU seconds this thread spent on it (`time.thread_time`: with one torch thread on a CPU,
        the batch's compute; its wall time beyond that is waiting for a core or the GIL); and
        how often the kernel preempted this thread meanwhile (involuntary context switches;
        None where the platform does not count them per thread)."""
        from profiler.cpu_threads import worker_threads
        from profiler.discriminator import p_real
        from profiler.generate import image_seed, served_batch

        m = self.model
        cpu_from_s, preempted_from = time.thread_time(), thread_preemptions()
        with worker_threads(m.device):
            images, encoded = served_batch(
                self.pipe,
                [m.prompts[p] for p, _ in jobs],
                [image_seed(m.seed, p, k) for p, k in jobs],
                steps=m.steps,
                resolution=m.resolution,
                device=m.device,
            )
            quality = p_real(self.backbone, self.head, images).tolist() if scored else []
        outputs = [(float(quality[i]) if scored else None, png) for i, png in enumerate(encoded)]
        preempted = thread_preemptions()
        preemptions = None if preempted is None else preempted - preempted_from
        return outputs, time.thread_time() - cpu_from_s, preemptions


def thread_preemptions() -> int | None:
    """The calling thread's involuntary context switches so far (Linux's per-thread rusage);
    None elsewhere."""
    who = getattr(resource, "RUSAGE_THREAD", None)
    return None if who is None else resource.getrusage(who).ru_nivcsw


def default_discriminator(bundle_source: str) -> Path:
    """The discriminator of the profiler's work folder that holds the bundle folder."""
    from profiler.layout import WorkLayout

    return WorkLayout(Path(bundle_source).resolve().parent).discriminator


def diffusers_models(
    bundle, bundle_source: str, config, discriminator: str | None
) -> list[DiffusersModel]:
    """One spec per bundle model; an input error names what is missing (a profile without its
    source model, no discriminator checkpoint or one trained on the bundle's prompts, a time
    scale other than 1)."""
    from profiler.discriminator import DiscriminatorError, check_held_out, training_prompts
    from profiler.sharding import PipelineSource

    if config.time_scale != 1.0:
        raise InputError(
            f"--time-scale {config.time_scale:g}: the diffusers backend runs models at their "
            "real speed; use 1"
        )
    profiles = [bundle.meta.get("latency_profiles", {}).get(n, {}) for n in bundle.model_names]
    for name, profile in zip(bundle.model_names, profiles):
        missing = [k for k in PROFILE_KEYS if profile.get(k) is None]
        if missing:
            raise InputError(
                f"--bundle {bundle_source!r}: model {name!r} has no {missing[0]} in its latency "
                "profile; the diffusers backend serves bundles made by `t2isim profile`"
            )
    path = Path(discriminator) if discriminator else default_discriminator(bundle_source)
    if not path.is_file():
        raise InputError(
            f"--discriminator {str(path)!r}: no discriminator checkpoint there (give the one "
            "`t2isim profile` trained, <work>/discriminator.pt)"
        )
    texts = tuple(str(t) for t in bundle.prompts["text"])
    try:  # its scores of the bundle's prompts would be in-sample
        check_held_out(training_prompts(path), texts, f"--discriminator {str(path)!r}")
    except DiscriminatorError as exc:
        raise InputError(str(exc)) from None
    loads = bundle.models.set_index("model")["load_s"]
    models = []
    for m, (name, profile) in enumerate(zip(bundle.model_names, profiles)):
        source = str(profile["source_model"])
        models.append(
            DiffusersModel(
                name=name,
                source=PipelineSource(
                    source, str(profile.get("dtype") or "fp16"), profile.get("guidance_scale")
                ),
                steps=int(profile["steps"]),
                resolution=int(profile["resolution"]),
                prompts=texts,
                seed=config.seed,
                discriminator=str(path.resolve()),
                device="cpu" if source.startswith(TINY_PREFIX) else "cuda",
                latency_s=tuple(float(x) for x in bundle.latency_table_s[m]),
                load_s=float(config.load_s if config.load_s is not None else loads[name]),
            )
        )
    return models
