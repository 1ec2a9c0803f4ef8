"""The serving driver of the decision core: the simulator's policies on Ray Serve (wall time,
emulated or real models), a trace-replaying load generator and a sim-vs-real validation.

Imports of ray, httpx and torch stay inside the modules that need them (optional extra
`serve`); `simulator/` never imports this package."""
