"""Adaptive serving policies; importing this package registers them with the simulator.

hadis, router-only, disc-only, random (policies/hadis.py), diffserve, proteus, cache-d,
cache-dq; clipper-light, clipper-heavy and static-cascade live in the core
(simulator/baselines.py).
"""

from policies import cached, diffserve, hadis, proteus  # noqa: F401
from simulator import baselines  # noqa: F401  (the core policies)
