"""Where a serving session's start and stop go: `ServeSession`'s timed steps (Ray started,
Serve's controller and HTTP front up, the ingress and workers deployed with the initial plan;
Serve's drain and stop, Ray's stop), for each Serve stack in turn, --rounds times, the stacks
alternating so that a drift of the machine's speed falls on all of them. Emulated workers (the
static cascade of `serve_overhead.py`), a local Ray cluster of --num-cpus CPUs, no load.

    python benchmarks/serve_startup.py [--stacks lean,shipped] [--rounds 3] [--workers 16]
                                       [--num-cpus 2]

Prints one line per session, then each stack's median per step, and last `start_s_<stack>=
stop_s_<stack>=` for each stack (medians of the rounds' sums) and, with two stacks or more,
`start_ratio=` and `stop_ratio=`: the first stack's over the second's, both timed in this
process. Session 37 here, 16 workers, 2 rounds: start 32.1 s lean against 26.3 s shipped (the
deployments 24.1 against 20.6: a replica process each, started on 2 cores), stop 5.4 against
2.2 s (Serve's drain advances once per controller loop: 1 s lean, 0.1 s shipped);
`results/validation/HISTORY.md`.
"""

from __future__ import annotations

import argparse
import os
import statistics

from serving.server import START_STEPS, STOP_STEPS, ServeSession
from serving.setup import ServeSetup
from serving.stack import free_port
from simulator.errors import InputError

SETUP = {  # the overhead benchmark's cascade (`serve_overhead.py`)
    "policy": "static-cascade",
    "options": {"light": "SDXL-Lightning", "heavy": "SD3.5-Large-Turbo"},
}


def timed_session(setup: ServeSetup, num_cpus: int) -> dict[str, float]:
    """One session's step seconds (`ServeSession.step_s`), started and stopped at once."""
    session = ServeSession(setup, port=free_port(), num_cpus=num_cpus)
    with session:
        pass
    return session.step_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stacks", default="lean,shipped", help="serving.stack's names")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--num-cpus", type=int, default=2)
    args = parser.parse_args()
    stacks = args.stacks.split(",")
    if args.rounds < 1 or args.workers < 1 or args.num_cpus < 1:
        parser.error("expected --rounds, --workers and --num-cpus >= 1")
    if len(set(stacks)) != len(stacks):
        parser.error(f"--stacks {args.stacks!r}: a stack named twice")
    sim = {"n_workers": args.workers, "time_scale": 0.001}
    setups = {name: ServeSetup("default", **SETUP, sim=sim, stack=name) for name in stacks}
    try:  # the stacks and the setup's own checks, before Ray starts
        for setup in setups.values():
            setup.build()
    except InputError as exc:
        parser.error(str(exc))
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    steps = START_STEPS + STOP_STEPS
    timings = {name: [] for name in stacks}
    for k in range(1, args.rounds + 1):
        for name in stacks:
            step_s = timed_session(setups[name], args.num_cpus)
            timings[name].append(step_s)
            text = ", ".join(f"{s} {step_s[s]:.2f}" for s in steps)
            print(f"round {k} {name}: {text} s", flush=True)
    totals = {}
    for name, rounds in timings.items():
        median = {s: statistics.median(r[s] for r in rounds) for s in steps}
        print(
            f"{name} (median of {args.rounds}): " + ", ".join(f"{s} {median[s]:.2f}" for s in steps)
        )
        totals[name] = [
            statistics.median(sum(r[s] for s in part) for r in rounds)
            for part in (START_STEPS, STOP_STEPS)
        ]
    last = [f"start_s_{n}={start:.2f} stop_s_{n}={stop:.2f}" for n, (start, stop) in totals.items()]
    if len(stacks) > 1:
        (start_a, stop_a), (start_b, stop_b) = totals[stacks[0]], totals[stacks[1]]
        last.append(f"start_ratio={start_a / start_b:.3f} stop_ratio={stop_a / stop_b:.3f}")
    print(" ".join(last))


if __name__ == "__main__":
    main()
