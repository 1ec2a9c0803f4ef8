"""Generate the figure notebooks of experiments/notebooks/ from this one source.

    python experiments/notebooks/build_notebooks.py           # (re)write every notebook
    python experiments/notebooks/build_notebooks.py --check   # exit 1 if one is stale

The notebooks are written without outputs and with fixed cell ids, so regenerating them is
byte-identical. Each figure notebook reads the CSVs `t2isim figures` writes (folder
$T2ISIM_RESULTS, default the repository's results/), draws every figure with its module's
`plot(data, path)`, and shows summaries and the claims table; 04_routers reads
`t2isim routers evaluate` output ($T2ISIM_ROUTERS) or, unset, evaluates routers on a small
seeded synthetic CSV. Notebook metadata `t2isim.figures` lists the figures a notebook draws;
the cell drawing figure NAME carries the tag `figure` and the metadata `t2isim_figure: NAME`.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent


def src(text: str) -> str:
    """A cell's source from an indented triple-quoted block."""
    return textwrap.dedent(text).strip("\n")


# ----------------------------------------------------------------------------- figure notebooks

FIGURE_SETUP = src(
    '''
    import dataclasses
    import os
    import tempfile
    from pathlib import Path

    import pandas as pd
    from IPython.display import Image, display

    from experiments.figures import figure_modules

    MODULES = figure_modules()
    pd.set_option("display.precision", 3)
    pd.set_option("display.width", 160)


    class MissingResultError(ValueError):
        """A figure CSV this notebook needs is not in the results folder."""


    def find_results() -> Path:
        """$T2ISIM_RESULTS, else results/ of the repository holding the working directory."""
        if os.environ.get("T2ISIM_RESULTS"):
            return Path(os.environ["T2ISIM_RESULTS"]).expanduser().resolve()
        for folder in (Path.cwd(), *Path.cwd().parents):
            if (folder / "pyproject.toml").is_file() and (folder / "experiments").is_dir():
                return folder / "results"
        raise MissingResultError("no repository above the working directory; set T2ISIM_RESULTS")


    def require(names: list[str]) -> None:
        """Fail naming the missing CSVs and the command that writes them."""
        missing = [n for n in names if not (RESULTS / f"{n}.csv").is_file()]
        if missing:
            raise MissingResultError(
                f"{', '.join(f'{n}.csv' for n in missing)} not found in {RESULTS}: run "
                f"`t2isim figures --quick --only {','.join(missing)} --out {RESULTS}` "
                "or set T2ISIM_RESULTS"
            )


    def show(name: str) -> pd.DataFrame:
        """NAME.csv drawn by the figure module's plot() and displayed; returns the data."""
        require([name])
        data = pd.read_csv(RESULTS / f"{name}.csv")
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"{name}.png"
            MODULES[name].plot(data, path)
            display(Image(data=path.read_bytes(), width=900))
        return data


    def claims(name: str, data: pd.DataFrame) -> pd.DataFrame:
        """The paper's claims the figure checks: the paper's number, ours, the verdict."""
        rows = [dataclasses.asdict(c) for c in MODULES[name].claims(data)]
        return pd.DataFrame(rows, columns=["claim", "paper", "ours", "verdict", "note"])


    FIGURES = {figures!r}
    RESULTS = find_results()
    require(FIGURES)
    print(f"results: {RESULTS}")
    '''
)

FIGURE_INTRO = src(
    """
    Figures are read from `$T2ISIM_RESULTS` (default: the repository's `results/`), as
    written by

    ```
    t2isim figures [--quick] --only {only} --out results/
    ```

    Each figure is drawn by its module's `plot(data, path)` from its CSV alone (the figure's
    tidy data), followed by summaries and the paper's claims next to ours (the verdicts of
    `REPRODUCTION.md`). Regenerate this notebook with
    `python experiments/notebooks/build_notebooks.py`.
    """
)


@dataclass(frozen=True)
class Figure:
    """A figure's section: what it shows and the paper's claim (markdown), then summary cells
    (the figure's data is the variable named like the figure)."""

    name: str
    heading: str
    text: str
    summaries: tuple[str, ...]


@dataclass(frozen=True)
class FigureNotebook:
    stem: str
    title: str
    intro: str
    figures: tuple[Figure, ...]


def figure_cells(fig: Figure) -> list:
    return [
        new_markdown_cell(f"## {fig.name}: {fig.heading}\n\n{src(fig.text)}"),
        new_code_cell(
            f'{fig.name} = show("{fig.name}")',
            metadata={"tags": ["figure"], "t2isim_figure": fig.name},
        ),
        *(new_code_cell(src(code)) for code in fig.summaries),
        new_code_cell(f'claims("{fig.name}", {fig.name})'),
    ]


def figure_notebook(spec: FigureNotebook):
    names = [f.name for f in spec.figures]
    cells = [
        new_markdown_cell(
            f"# {spec.title}\n\n{src(spec.intro)}\n\n{FIGURE_INTRO.format(only=','.join(names))}"
        ),
        new_code_cell(FIGURE_SETUP.replace("{figures!r}", json.dumps(names))),
    ]
    for fig in spec.figures:
        cells += figure_cells(fig)
    return finish(cells, names)


def finish(cells: list, figures: list[str]):
    """A notebook with fixed cell ids, a python3 kernelspec and the t2isim metadata."""
    for i, cell in enumerate(cells):
        cell["id"] = f"cell-{i:02d}"
    nb = new_notebook(cells=cells)
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
        "t2isim": {"figures": figures},
    }
    return nb


FIG02 = Figure(
    "fig02",
    "single models and cascade frontiers (HADIS Fig. 2)",
    """
    Left: batch-1 latency vs FID of each model alone. Right: every cascade configuration
    (grey) with the Pareto frontiers of two-model (red) and three-model (blue) cascades; the
    orange dashed lines mark where the two-model frontier changes pair.

    **Paper's claim:** the two- and three-model frontiers coincide over the relevant latency
    range (a third stage buys no significantly better FID), and the two-model frontier has one
    pair per latency regime: Lightning→Turbo, Turbo→Medium, Medium→Large.
    """,
    (
        """
        fig02[fig02["kind"] == "model"][["cascade", "latency_s", "fid"]]
        """,
        """
        # frontier per cascade kind: size, latency range, best FID
        fig02[fig02["frontier"]].groupby("kind").agg(
            points=("fid", "size"),
            latency_min_s=("latency_s", "min"),
            latency_max_s=("latency_s", "max"),
            best_fid=("fid", "min"),
        )
        """,
        """
        print("two-model frontier regimes:", MODULES["fig02"].frontier_regimes(fig02))
        if (fig02["kind"] == "three-model").any():
            # relative FID gain of three- over two-model cascades over the latency budgets
            gain02 = MODULES["fig02"].frontier_gain(fig02)["gain"]
            display(gain02.describe().to_frame().T)
        """,
    ),
)

FIG03 = Figure(
    "fig03",
    "best pair per load and tolerated violations (HADIS Fig. 3)",
    """
    Each two-model pair serves a Poisson load with DiffServe's allocator. Left and middle: FID
    vs SLO-violation ratio per pair at low and high load (red circle: the best pair within 5%
    violations). Right: the best pair per load (fraction of the cluster's capacity) and
    tolerance; the top row is the pair the HADIS MILP plans.

    **Paper's claim:** no fixed cascade is best everywhere: the best pair changes with the load
    and with the tolerated violation ratio.
    """,
    (
        """
        # best simulated pair per tolerated violation ratio (rows) and load (columns)
        best03 = MODULES["fig03"].best_pairs(fig03)
        best03.pivot(index="tolerance", columns="load_fraction", values="pair")
        """,
        """
        # FID and SLO-violation ratio of each pair per load
        fig03[fig03["kind"] == "simulated"].pivot_table(
            index="pair", columns="load_fraction", values=["fid", "slo_violation_ratio"]
        )
        """,
        """
        # the pair and thresholds the HADIS MILP plans per load
        milp03 = fig03[fig03["kind"] == "milp"]
        milp03[["load_fraction", "demand_qps", "pair", "router_ratio", "disc_ratio", "fid"]]
        """,
    ),
)

FIG04 = Figure(
    "fig04",
    "§3 feasibility regions and the simulator check (HADIS Figs. 4-5)",
    """
    Left: the discriminator operating points (FPR, TPR) for which the hybrid (HY) beats
    router-only (RO) at equal cost (eq. 1); middle: the router points for which HY beats
    discriminator-only (DO) (eq. 2); both for q = 0.5 and α ∈ {0.1, 0.2}, with the bundle's
    ROC curves. Right: the §3 formulas' quality and cost of RO, HY and DO against the
    simulator's measurements at equal cost.

    **Paper's claim:** the HY-vs-RO region shrinks and the HY-vs-DO region grows as α rises;
    there are settings where HY beats both at equal cost.
    """,
    (
        """
        # feasibility-region area (share of the ROC square) per comparison and α
        regions04 = fig04[fig04["kind"] == "region"]
        regions04.groupby(["curve", "alpha"])["area"].first().unstack()
        """,
        """
        roc04 = fig04[fig04["kind"] == "roc"]
        pd.Series(
            {
                curve: MODULES["fig04"].roc_auc(rows["tp"].to_numpy(), rows["fp"].to_numpy())
                for curve, rows in roc04.groupby("curve")
            },
            name="ROC AUC",
        )
        """,
        """
        # formulas vs simulator per operating point (empty without ground-truth hardness)
        check04 = fig04[fig04["kind"] == "check"]
        check04[
            [
                "operating_point",
                "curve",
                "router_ratio",
                "disc_ratio",
                "quality_formula",
                "quality_sim",
                "cost_formula",
                "cost_sim",
                "fid_sim",
            ]
        ]
        """,
    ),
)

FIG07 = Figure(
    "fig07",
    "end-to-end on the Azure-shaped trace (HADIS Fig. 7)",
    """
    Demand, FID and SLO violations over time (10 s windows) of Clipper-Light, Clipper-Heavy,
    Proteus, DiffServe and HADIS on the Azure-shaped trace, and their averages over the whole
    trace (right).

    **Paper's claim:** HADIS has 7–23% lower FID than every baseline except Clipper-Heavy and
    reduces SLO violations 2.7×, 4.2× and 45× vs DiffServe, Proteus and Clipper-Heavy;
    Clipper-Heavy averages ≈77% violations, Proteus ≈7%, Clipper-Light 0.
    """,
    (
        """
        # means over seeds (± 95% CI half-widths), and HADIS relative to each
        avg07 = MODULES["fig07"].averages(fig07)[
            ["n_seeds", "fid", "fid_ci95", "slo_violation_ratio", "slo_violation_ratio_ci95"]
        ]
        fid07, violations07 = avg07["fid"], avg07["slo_violation_ratio"]
        avg07.assign(
            hadis_fid_reduction=1 - fid07["hadis"] / fid07,
            violations_over_hadis=violations07 / max(violations07["hadis"], 1e-12),
        )
        """,
        """
        # every seed: FID and SLO violations per method (the averages are their means)
        MODULES["fig07"].seed_data(fig07).pivot(
            index="seed", columns="method", values=["fid", "slo_violation_ratio"]
        )
        """,
        """
        # the runs behind the averages, from the sweep store `t2isim figures` fills
        # (results/sweeps/azure: one Parquet row per run, keyed by config, bundle, trace and
        # code version); absent when the CSVs were copied without it
        from experiments.sweep import read_store

        store = RESULTS / "sweeps" / "azure"
        if store.is_dir():
            runs = read_store(store)
            display(
                runs.groupby("policy")[["fid", "slo_violation_ratio", "p99_latency_s", "wall_s"]]
                .agg(["mean", "std", "size"])
            )
        else:
            print(f"no sweep store at {store}: run `t2isim figures --only fig07`")
        """,
        """
        # the busiest tenth of the trace seconds vs the rest
        ts07 = fig07[fig07["kind"] == "timeseries"]
        demand07 = ts07.groupby("second")["demand_qps"].first()
        busy07 = ts07["second"].isin(demand07.nlargest(len(demand07) // 10).index)
        ts07.assign(period=busy07.map({True: "busiest 10%", False: "rest"})).pivot_table(
            index="method", columns="period", values=["fid", "slo_violation_ratio"]
        )
        """,
    ),
)

FIG08 = Figure(
    "fig08",
    "piecewise-constant demand P1-P4 (HADIS Fig. 8)",
    """
    HADIS on a P1 P2 P3 P4 P3 P2 P1 demand trace: demand, realised and planned FID, SLO
    violations, completions per model, workers per model and the share of queries visiting the
    heavy model.

    **Paper's claim:** FID rises modestly as demand climbs to P3/P4 and recovers as it falls;
    violations stay low (1–5%); traffic and workers shift toward faster models under load.
    """,
    (
        """
        # per phase visit: level, mean realised FID, violations, heavy ratio
        MODULES["fig08"].phase_summary(fig08)
        """,
        """
        # mean workers per model in each phase visit
        workers08 = [c for c in fig08.columns if c.startswith("workers_")]
        fig08.groupby(["phase_index", "phase"])[workers08].mean()
        """,
    ),
)

FIG09 = Figure(
    "fig09",
    "hybrid-routing ablation (HADIS Fig. 9)",
    """
    Random (random hardness and quality scores), Router-only (no discriminator re-routing),
    Disc-only (no router bypass) and HADIS (hybrid) on the Azure-shaped trace with the same
    MILP allocator: average FID, SLO violations and the share of queries on the heavy model.

    **Paper's claim:** HADIS has the lowest FID and violations of all variants; Random and
    Router-only lose FID (hard queries misrouted to the light model), Disc-only pays
    violations (every query runs the light model first).
    """,
    (
        """
        # per variant: means over seeds with 95% CI half-widths
        MODULES["fig07"].averages(fig09).drop(columns=["kind", "seed"])
        """,
        """
        # paired per-seed differences to HADIS: (mean, 95% CI half-width)
        from experiments.figures import seeds

        seeds09 = MODULES["fig07"].seed_data(fig09)
        pd.DataFrame(
            {
                metric: {
                    other: seeds.paired_difference(seeds09, metric, other, "hadis")
                    for other in ("random", "router-only", "disc-only")
                }
                for metric in ("fid", "slo_violation_ratio")
            }
        )
        """,
    ),
)

FIG10 = Figure(
    "fig10",
    "online MILP vs cached planners (HADIS Fig. 10)",
    """
    HADIS's online MILP against Cache-D (plans cached by demand range) and Cache-D+Q (demand
    and queue-length ranges) on the Azure-shaped trace: timeseries and averages, as Fig. 7.

    **Paper's claim:** the cached planners lag behind load shifts (a startup spike in
    violations, transient FID drops); HADIS has fewer violations with comparable or better
    FID, and Cache-D+Q improves on Cache-D in both.
    """,
    (
        """
        MODULES["fig07"].averages(fig10)[
            ["n_seeds", "fid", "fid_ci95", "slo_violation_ratio", "slo_violation_ratio_ci95"]
        ]
        """,
        """
        # the startup transient: the first tenth of the trace vs the rest
        ts10 = fig10[fig10["kind"] == "timeseries"]
        start10 = ts10["second"] < 0.1 * ts10["second"].max()
        ts10.assign(period=start10.map({True: "first 10%", False: "rest"})).pivot_table(
            index="method", columns="period", values=["fid", "slo_violation_ratio"]
        )
        """,
    ),
)

FIG11 = Figure(
    "fig11",
    "sensitivity to the latency SLO (HADIS Fig. 11)",
    """
    Average FID (left) and SLO violations (right) of every method on the Azure-shaped trace
    with the SLO scaled 0.25×–1.75× of 60 s (quick mode: 0.5×, 1×, 1.5×).

    **Paper's claim:** HADIS keeps violations low at every SLO and, under tight SLOs
    (0.25–0.75×), has up to 11% / 7% lower FID than Proteus / DiffServe; Clipper-Light has ≈0
    violations with the worst FID, Clipper-Heavy the best FID with the most violations;
    DiffServe's violations are ≈0 at 0.25×.
    """,
    (
        """
        # FID per method (rows) and SLO multiplier (columns): means over seeds
        methods11 = list(MODULES["fig11"].METHODS)
        avg11 = MODULES["fig11"].averages(fig11)
        avg11.pivot(index="method", columns="slo_multiplier", values="fid").loc[methods11]
        """,
        """
        # SLO-violation ratio per method and SLO multiplier: means over seeds
        by11 = {"index": "method", "columns": "slo_multiplier"}
        avg11.pivot(**by11, values="slo_violation_ratio").loc[methods11]
        """,
    ),
)

FIG14 = Figure(
    "fig14",
    "load sensitivity of Fig. 7 (not a paper figure)",
    """
    The Azure-shaped trace scaled to several peak demands: average FID, SLO violations and
    HADIS's FID reduction vs each baseline (means over seeds, 95% CIs), with the paper's 7–23%
    band in grey. HADIS §5.1 scales the trace to its cluster without giving the peak, so the
    headline FID claim is checked at every peak.
    """,
    (
        """
        # HADIS's FID reduction vs each baseline per peak (± 95% CI half-width)
        gains14 = fig14[fig14["method"] != "hadis"]
        gains14.pivot(index="method", columns="peak_qps", values=["fid_gain", "fid_gain_ci95"])
        """,
        """
        # violations and the share of the run without a feasible plan, per method and peak
        fig14.pivot(
            index="method",
            columns="peak_qps",
            values=["slo_violation_ratio", "infeasible_plan_share"],
        )
        """,
    ),
)

TAB01 = Figure(
    "tab01",
    "overheads: router, discriminator and MILP planner (HADIS §5.8)",
    """
    The router's and discriminator's per-query costs (configured from §5.8, not measured),
    their sum relative to each model's batch-1 latency, and the measured wall time of every
    MILP planning call of HADIS on the Azure-shaped trace.

    **Paper's claim:** router 5 ms and discriminator 7 ms per query, negligible next to
    diffusion inference (2.4%, 0.9%, 0.01%, <0.01% of the four models' latencies); the MILP
    takes ~30 ms per planning cycle, off the critical path.
    """,
    (
        """
        # the table as data: the paper's value next to ours, and where ours comes from
        tab01.set_index("item")
        """,
    ),
)

FIG12 = Figure(
    "fig12",
    "hardness sensitivity at fixed demand (HADIS Fig. 12)",
    """
    Fixed demand, four phases alternating easy-only and hard-only prompts (bottom / top 30% by
    router score), served by HADIS: the router's bypass share, the heavy-class intake (queries
    that visit the heavy model), the planned thresholds and the workers.

    **Paper's claim:** at each hard phase the router bypasses more queries, the heavy-class
    intake jumps and workers move to the heavy model.
    """,
    (
        """
        # phase means of bypass share, heavy intake and workers on the plan's heavy model
        MODULES["fig12"].phase_means(fig12)
        """,
        """
        # share of the seconds each plan was in force, per phase
        fig12.groupby("phase_index")["plan"].value_counts(normalize=True).unstack(fill_value=0)
        """,
    ),
)

FIG13 = Figure(
    "fig13",
    "HADIS with learned routers (router ablation on the Azure trace)",
    """
    HADIS with its hardness score replaced by a trained router of `routers/` (`bundle`: the
    bundle's own rule-based router score), all else equal: same trace, allocator,
    discriminator and seed; every router on several seeds. Left: mean FID per router; right:
    SLO violations (95% CIs).

    **Claim (RouteT2I / ECVL-Router, no HADIS number):** a learned router gives a lower FID
    than the rule-based router, and than random scores, at no more violations; `oracle`
    bounds what routing can give.
    """,
    (
        """
        # per router: means over seeds, relative to the bundle's rule router
        average13 = fig13[fig13["kind"] == "average"].set_index("router")
        average13.assign(
            fid_vs_rule=average13["fid"] - average13.at["bundle", "fid"],
            violations_vs_rule=average13["slo_violation_ratio"]
            - average13.at["bundle", "slo_violation_ratio"],
        ).sort_values("fid")[["n_seeds", "fid", "fid_ci95", "fid_vs_rule", "violations_vs_rule"]]
        """,
        """
        # FID per seed and router: the paired comparisons behind the claims
        fig13[fig13["kind"] == "seed"].pivot(index="seed", columns="router", values="fid")
        """,
    ),
)

FIG15 = Figure(
    "fig15",
    "constant load under the artifact's testbed (HADIS artifact's own experiment)",
    """
    Constant demand of 1-32 QPS, 200 s each, every knob from the `artifact-testbed` preset
    (16 workers, 10x time compression, 6 s SLO, `planner=faithful`: the port of the artifact's
    controller). Per load: the share of time each cascade pair is in force, SLO violations and
    FID. `docs/FAITHFUL.md` lists what still differs from the artifact's controller.

    **Question:** at which load does each pair take over, compared with the artifact's own
    constant-load logs (which pick SDXL-Lightning -> SD3.5-Large-Turbo from 19 QPS)?
    """,
    (
        """
        # share of time each pair (or the fallback) is in force, per load
        fig15.pivot_table(index="load_qps", columns="plan", values="share", fill_value=0)
        """,
        """
        # violations and FID per load
        fig15.groupby("load_qps")[["slo_violation_ratio", "fid", "fid_planned"]].first()
        """,
    ),
)

FIGURE_NOTEBOOKS = (
    FigureNotebook(
        "01_models_and_cascades",
        "Models and cascades: HADIS Figs. 2-5",
        """
        Why HADIS uses two-model cascades (Fig. 2), why the pair must adapt to the load
        (Fig. 3), and when the hybrid router + discriminator beats either alone (§3,
        Figs. 4-5).
        """,
        (FIG02, FIG03, FIG04),
    ),
    FigureNotebook(
        "02_end_to_end",
        "End-to-end comparison: HADIS Figs. 7, 8, 11 and the §5.8 overhead table",
        """
        HADIS against Clipper-Light/-Heavy, Proteus and DiffServe on the Azure-shaped trace
        (Fig. 7), its adaptation on a synthetic phased trace (Fig. 8), the SLO sensitivity of
        all methods (Fig. 11) and the runtime overheads (§5.8).
        """,
        (FIG07, FIG08, FIG11, FIG14, FIG15, TAB01),
    ),
    FigureNotebook(
        "03_ablations",
        "Ablations: HADIS Figs. 9, 10, 12 and learned routers",
        """
        Which part of HADIS matters: hybrid routing vs its halves (Fig. 9), the MILP vs cached
        planners (Fig. 10), the response to a shift in query hardness (Fig. 12), and HADIS with
        its rule-based router replaced by learned routers (fig13).
        """,
        (FIG09, FIG10, FIG12, FIG13),
    ),
)

# ----------------------------------------------------------------------------- routers notebook

ROUTERS_INTRO = src(
    """
    # Router evaluation (RouteT2I, ECVL-Router, RouteLLM-style, HADIS rule)

    Reads the output of

    ```
    t2isim routers evaluate --data FILE.csv|hadis-artifact --out DIR
    ```

    from `$T2ISIM_ROUTERS` (`routers.csv`: summary metrics per router; `curves.csv`: routed
    quality and ΔP at heavy shares 0.1–0.9). When the variable is unset, the notebook
    evaluates a few routers on a small seeded synthetic CSV it writes itself (prompts with a
    'hard' word lose quality on the edge model), so it always runs. Regenerate this notebook
    with `python experiments/notebooks/build_notebooks.py`.
    """
)

ROUTERS_SETUP = src(
    '''
    import contextlib
    import io
    import itertools
    import os
    import tempfile
    from pathlib import Path

    import numpy as np
    import pandas as pd
    from IPython.display import Image, display

    from experiments.figures import style

    pd.set_option("display.precision", 3)
    ROUTER_FILES = ("routers.csv", "curves.csv")
    SYNTHETIC_PROMPTS = 300
    SYNTHETIC_SEED = 0
    SYNTHETIC_ROUTERS = "random,oracle,knn,mlp,mf,zooter,routet2i,ecvl-quality"


    class MissingResultError(ValueError):
        """A router-evaluation CSV this notebook needs is not in the folder."""


    def synthetic_wide_csv(path: Path, n: int, seed: int) -> Path:
        """A wide routing CSV (prompt, edge, mid, cloud): prompts with a 'hard' word lose about
        0.25 quality on the edge model and nothing on the cloud model."""
        hard_words = ("intricate", "crowd", "reflection", "lettering", "hands", "mirror")
        easy_words = ("apple", "dog", "cup", "sky", "tree", "red", "blue", "small", "on", "the")
        rng = np.random.default_rng(seed)
        hard = rng.random(n) < 0.4
        texts = []
        for is_hard in hard:
            words = list(rng.choice(easy_words, rng.integers(3, 8)))
            if is_hard:
                words.insert(int(rng.integers(0, len(words) + 1)), str(rng.choice(hard_words)))
            texts.append(" ".join(words))
        base = rng.normal(0.6, 0.08, n)
        edge = base - 0.25 * hard + rng.normal(0, 0.03, n)
        cloud = base + rng.normal(0, 0.03, n)
        mid = (edge + cloud) / 2
        pd.DataFrame({"prompt": texts, "edge": edge, "mid": mid, "cloud": cloud}).to_csv(
            path, index=False
        )
        return path


    if os.environ.get("T2ISIM_ROUTERS"):
        ROUTERS_DIR = Path(os.environ["T2ISIM_ROUTERS"]).expanduser().resolve()
    else:
        # `t2isim routers evaluate` on a small seeded synthetic CSV (bag-of-words features);
        # its console tables are silenced, the cells below show the same numbers
        from routers.cli import evaluate

        synthetic_dir = tempfile.TemporaryDirectory(prefix="t2isim-routers-")  # removed at exit
        wide = synthetic_wide_csv(
            Path(synthetic_dir.name) / "synthetic.csv", SYNTHETIC_PROMPTS, SYNTHETIC_SEED
        )
        ROUTERS_DIR = Path(synthetic_dir.name) / "routers"  # evaluate writes a new folder
        with contextlib.redirect_stdout(io.StringIO()):
            evaluate(
                data=str(wide),
                out=ROUTERS_DIR,
                routers=SYNTHETIC_ROUTERS,
                seed=SYNTHETIC_SEED,
                features="bow",
                epochs=20,
            )
        print(f"evaluated {SYNTHETIC_ROUTERS} on {SYNTHETIC_PROMPTS} synthetic prompts")
    missing = [f for f in ROUTER_FILES if not (ROUTERS_DIR / f).is_file()]
    if missing:
        raise MissingResultError(
            f"{', '.join(missing)} not found in {ROUTERS_DIR}: run `t2isim routers evaluate "
            f"--data FILE.csv|hadis-artifact --out {ROUTERS_DIR}` or unset T2ISIM_ROUTERS"
        )
    summary = pd.read_csv(ROUTERS_DIR / "routers.csv")
    curves = pd.read_csv(ROUTERS_DIR / "curves.csv")
    print(f"routers: {ROUTERS_DIR}")
    '''
)

ROUTERS_PLOT = src(
    '''
    def plot_router_curves(curves: pd.DataFrame, path: Path) -> None:
        """Routed test quality and ΔP (share of the gap recovered) vs heavy share per router."""
        width_in, height_in = 2 * style.COLUMN_IN, 1.4 * style.ROW_IN
        fig, axes = style.new_figure(1, 2, width_in=width_in, height_in=height_in)
        reference = {"oracle": ("k", "--"), "random": ("0.5", ":")}
        palette = itertools.cycle([f"C{k}" for k in (0, 1, 2, 3, 4, 5, 6, 8, 9)])  # no grey
        for router, rows in curves.groupby("router", sort=False):
            color, ls = reference[router] if router in reference else (next(palette), "-")
            for ax, column in zip(axes[0], ("quality", "dp")):
                x, y = rows["heavy_share"], rows[column]
                ax.plot(x, y, color=color, ls=ls, marker=".", label=router)
        axes[0, 0].set(xlabel="heavy share", ylabel="routed mean quality (test)")
        axes[0, 1].set(xlabel="heavy share", ylabel="ΔP (gap recovered)")
        axes[0, 1].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
        style.save(fig, path)


    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "router_curves.png"
        plot_router_curves(curves, path)
        display(Image(data=path.read_bytes(), width=900))
    '''
)

ROUTERS_CURVE_TEXT = src(
    """
    ## Quality and ΔP vs heavy share

    Each router ranks the test prompts by the predicted benefit of the heavy model; sending
    the top share to the heavy model gives the routed quality (left) and ΔP, the share of the
    light→heavy quality gap recovered (right). The oracle (dashed) bounds what any router can
    reach; random (dotted) is the baseline a router must beat.

    **Papers' claim (RouteT2I, ECVL-Router):** learned routers recover most of the gap while
    sending a minority of prompts to the heavy model, well above random.
    """
)

ROUTERS_SUMMARY_TEXT = src(
    """
    ## Summary per router

    APGR: area under the ΔP curve (oracle: the best reachable); CPT50: heavy share needed to
    recover 50% of the gap; `saving_at_dp50`: cloud calls saved vs random at ΔP = 50%;
    `light_share_at_10pct_drop`: prompts kept on the light model within a 10% quality drop
    from all-heavy.
    """
)

ROUTERS_SUMMARIES = (
    """
    summary.sort_values("apgr", ascending=False).reset_index(drop=True)
    """,
    """
    # ΔP per router at each heavy share, and each router's mean lift over random
    dp = curves.pivot(index="router", columns="heavy_share", values="dp")
    display(dp.loc[summary["router"]])
    if "random" in dp.index:
        lift = (dp - dp.loc["random"]).mean(axis=1).rename("mean ΔP lift over random")
        display(lift.sort_values(ascending=False).to_frame())
    """,
    """
    # thresholds calibrated on the calibration split: realised heavy share on test
    calibration_path = ROUTERS_DIR / "calibration.csv"
    if calibration_path.is_file():
        calibration = pd.read_csv(calibration_path)
        display(calibration.pivot(index="router", columns="target", values="realised_test"))
    else:
        print(f"no calibration.csv in {ROUTERS_DIR}")
    """,
)


def routers_notebook():
    cells = [
        new_markdown_cell(ROUTERS_INTRO),
        new_code_cell(ROUTERS_SETUP),
        new_markdown_cell(ROUTERS_CURVE_TEXT),
        new_code_cell(
            ROUTERS_PLOT, metadata={"tags": ["figure"], "t2isim_figure": "router_curves"}
        ),
        new_markdown_cell(ROUTERS_SUMMARY_TEXT),
        *(new_code_cell(src(code)) for code in ROUTERS_SUMMARIES),
    ]
    return finish(cells, ["router_curves"])


# ----------------------------------------------------------------------------- output


def build_all() -> dict[str, object]:
    """File name -> notebook, for every notebook of this folder."""
    notebooks = {f"{spec.stem}.ipynb": figure_notebook(spec) for spec in FIGURE_NOTEBOOKS}
    notebooks["04_routers.ipynb"] = routers_notebook()
    return notebooks


def render(nb) -> str:
    nbformat.validate(nb)
    return nbformat.writes(nb) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a notebook is stale")
    parser.add_argument("--out", type=Path, default=HERE, help="folder of the notebooks")
    args = parser.parse_args(argv)
    stale = []
    for name, nb in build_all().items():
        path = args.out / name
        text = render(nb)
        if not args.check:
            path.write_text(text)
        elif not path.is_file() or path.read_text() != text:
            stale.append(name)
    if stale:
        print(f"stale notebooks (run {Path(__file__).name}): {', '.join(stale)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
