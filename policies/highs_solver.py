"""The one gateway to HiGHS (highspy): every solver object of the project is made and run here.

`new_highs(**options)` makes a `highspy.Highs` with the project's fixed options (silent,
`threads=1`: the planners' MILPs are too small to gain from more, `random_seed=0`) plus the
caller's; `pass_rowwise_model` loads a MILP given as arrays; `run_checked(h, label)` runs it and
returns the model status (`ModelStatus`) for the caller to branch on (optimal, infeasible,
unbounded, time limit with a feasible solution), raising `SolverError` on anything else: a
solver failure is never reported as infeasibility.

Thread pool. HiGHS runs every solve on a task scheduler that the first `run()` of an OS thread
starts and that thread keeps (a thread-local handle, shared by all Highs objects that thread
runs). Its worker count is fixed then: the `threads` option of that first run, or HiGHS's own
machine-dependent default when the option is 0 (2 on a 2-core machine). A later run in the
same thread with a different non-zero `threads` does not solve: `run()` returns kError with the
model status "Not Set" ("Option 'threads' is set to 1 but the scheduler has already been
initialized to use 2 threads"). Measured on highspy 1.16: Proteus solving at the default thread
count made every later `threads=1` HADIS solve in that process fail this way, and the planner
took the failure for infeasibility. Immunity: `run_checked` disposes of the calling thread's
scheduler (`Highs.resetGlobalScheduler(True)`) before each run, so every solve starts a fresh
one-thread scheduler whatever ran before it in the process (project code or not). With one
thread the scheduler has no worker threads: the reset and the restart cost at most tens of
microseconds per solve (measured: within the noise of a 0.1-0.2 ms trivial solve; the planner's
MILPs take milliseconds), and since the handle is per thread a reset never touches a solve
running in another thread.

highspy prints a banner on stdout the first time a `highspy.Highs` is built (its constructor
logs before any option can be set); `new_highs` first writes that once-per-process header
through a console-less solver object, so the project's command-line output stays clean.
"""

from __future__ import annotations

import highspy
import numpy as np

from simulator.errors import RunFailure

ModelStatus = highspy.HighsModelStatus
FIXED_OPTIONS: dict[str, object] = {
    "output_flag": False,
    "log_to_console": False,
    "threads": 1,  # see the module docstring: the process-wide pool is always one thread
    "random_seed": 0,
}
_ACCEPTED = (ModelStatus.kOptimal, ModelStatus.kInfeasible, ModelStatus.kUnbounded,
             ModelStatus.kUnboundedOrInfeasible)
_header_written = False


class SolverError(RunFailure):
    """HiGHS failed (not infeasibility): the message names the solve and HiGHS's status. A
    `RunFailure`: the CLI reports it in one line with exit code 1."""


def new_highs(**options: object) -> highspy.Highs:
    """A Highs object with the project's fixed options, then `options` (HiGHS option names,
    e.g. mip_rel_gap=0.0, time_limit=10.0, presolve="off")."""
    fixed = sorted(set(options) & set(FIXED_OPTIONS))
    if fixed:
        raise ValueError(f"new_highs: {fixed} are fixed for every solve of the project")
    _write_header_silently()
    h = highspy.Highs()
    for name, value in {**FIXED_OPTIONS, **options}.items():
        if isinstance(value, int | np.integer) and not isinstance(value, bool):
            value = int(value)
        if isinstance(value, float | np.floating):
            value = float(value)
        if h.setOptionValue(name, value) != highspy.HighsStatus.kOk:
            raise ValueError(f"new_highs: HiGHS rejects option {name}={value!r}")
    return h


def run_checked(h: highspy.Highs, label: str) -> highspy.HighsModelStatus:
    """Run `h` and return its model status: optimal, infeasible, unbounded (or HiGHS's
    "unbounded or infeasible"), or time limit with a feasible solution. Any other outcome
    raises `SolverError` naming `label`."""
    highspy.Highs.resetGlobalScheduler(True)
    run_status = h.run()
    model_status = h.getModelStatus()
    if run_status == highspy.HighsStatus.kError:
        raise SolverError(_failure(h, label, run_status, model_status))
    if model_status in _ACCEPTED:
        return model_status
    if model_status == ModelStatus.kTimeLimit and _has_feasible_solution(h):
        return model_status
    raise SolverError(_failure(h, label, run_status, model_status))


def _has_feasible_solution(h: highspy.Highs) -> bool:
    """Whether the last run of `h` left a feasible primal solution."""
    return h.getInfo().primal_solution_status == highspy.SolutionStatus.kSolutionStatusFeasible


def pass_rowwise_model(
    h: highspy.Highs,
    *,
    col_cost: np.ndarray,
    col_lower: np.ndarray,
    col_upper: np.ndarray,
    row_lower: np.ndarray,
    row_upper: np.ndarray,
    row_start: np.ndarray,
    col_index: np.ndarray,
    value: np.ndarray,
    integer: np.ndarray,
    label: str,
) -> None:
    """Load a minimisation MILP into `h`: the constraint matrix row-wise (row r's entries are
    `col_index[row_start[r]:row_start[r+1]]`, `value[...]`), `integer` a bool per column."""
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = len(col_cost), len(row_lower)
    lp.col_cost_ = np.asarray(col_cost, dtype=np.float64)
    lp.col_lower_ = np.asarray(col_lower, dtype=np.float64)
    lp.col_upper_ = np.asarray(col_upper, dtype=np.float64)
    lp.row_lower_ = np.asarray(row_lower, dtype=np.float64)
    lp.row_upper_ = np.asarray(row_upper, dtype=np.float64)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
    lp.a_matrix_.start_ = np.asarray(row_start, dtype=np.int32)
    lp.a_matrix_.index_ = np.asarray(col_index, dtype=np.int32)
    lp.a_matrix_.value_ = np.asarray(value, dtype=np.float64)
    kinds = (highspy.HighsVarType.kContinuous, highspy.HighsVarType.kInteger)
    lp.integrality_ = [kinds[int(flag)] for flag in integer]
    status = h.passModel(lp)
    if status == highspy.HighsStatus.kError:
        raise SolverError(f"{label}: HiGHS rejected the model (passModel status {status.name})")


def _failure(h: highspy.Highs, label: str, run_status, model_status) -> str:
    detail = " without a feasible solution" if model_status == ModelStatus.kTimeLimit else ""
    return (
        f"{label}: HiGHS solve failed (run status {run_status.name}, "
        f"model status {h.modelStatusToString(model_status)!r}{detail})"
    )


def _write_header_silently() -> None:
    """Log HiGHS's once-per-process banner through a solver object that has no console."""
    global _header_written
    if not _header_written:
        quiet = highspy.Highs.__bases__[0]()  # the C++ binding _Highs: its constructor is quiet
        quiet.setOptionValue("log_to_console", False)
        quiet.setCallback(None, None)  # the call that logs the banner
        _header_written = True
