"""What a serving run is: bundle, policy, its options and the simulator's `SimConfig` (one
config source for both drivers), built the same way in every process that needs them (the
ingress, the controller, the load generator)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from simulator.config import SimConfig
from simulator.errors import InputError
from simulator.hooks import PolicyHooks
from simulator.policy import PolicyContext

INGRESS_APP = "t2isim"
REAL_PATH_HOOKS = ("admit", "route", "accept_or_escalate")  # hooks the ingress runs


@dataclass(frozen=True)
class ServeSetup:
    bundle: str  # 'default' or a bundle folder (resolved in each process)
    policy: str
    options: dict = field(default_factory=dict)
    sim: dict = field(default_factory=dict)  # SimConfig fields

    @property
    def config(self) -> SimConfig:
        return SimConfig(**self.sim)

    def to_dict(self) -> dict:
        return {
            "bundle": self.bundle,
            "policy": self.policy,
            "options": dict(self.options),
            "sim": dict(self.sim),
        }

    @classmethod
    def from_dict(cls, data: dict) -> ServeSetup:
        return cls(data["bundle"], data["policy"], dict(data["options"]), dict(data["sim"]))

    def build(self):
        """(bundle, policy, config) in this process; the policy checked to use only the hooks
        the serving path runs."""
        import policies  # noqa: F401  (registers the adaptive policies)
        from experiments.inputs import resolve_bundle
        from simulator.policy import make_policy

        config = self.config
        bundle = resolve_bundle(self.bundle)
        context = PolicyContext(
            bundle=bundle,
            n_workers=config.n_workers,
            slo_s=config.slo_s,
            time_scale=config.time_scale,
            seed=config.seed,
            options=dict(self.options),
        )
        policy = make_policy(self.policy, context)
        hooks = PolicyHooks.of(policy)
        for name in ("queue_priority", "form_batch"):
            if getattr(hooks, name) is not None:
                raise InputError(
                    f"policy {self.policy!r} defines the {name} hook; the serving path runs "
                    f"only {', '.join(REAL_PATH_HOOKS)}"
                )
        if config.queue != "fifo":
            raise InputError(f"queue {config.queue!r}: the serving path serves fifo only")
        return bundle, policy, config


def model_app(index: int, name: str) -> str:
    """The Serve application of one model (one deployment, its replicas = its workers)."""
    return f"t2isim-m{index}-" + re.sub(r"[^A-Za-z0-9_-]", "_", name)
