"""What the notebooks of experiments/notebooks/ share, importable and linted like any module.

Figure notebooks: `open_results(figures)` finds the CSVs `t2isim figures` wrote
($T2ISIM_RESULTS, default the repository's results/) and fails naming any that is missing;
`FigureResults.show(name)` reads NAME.csv and displays what the figure module's
`plot(data)` draws (or, for a table with `plot = None`, the data); `claims` lists the paper's
claims next to ours. The routers notebook: `router_results(scratch)` reads `t2isim routers
evaluate` output ($T2ISIM_ROUTERS) or evaluates a few routers on a small seeded synthetic CSV,
and `plot_router_curves` draws routed quality and ΔP per router. The validation notebook:
`find_validation()`, the folder of `t2isim validate` output it reads (its figures:
`serving.validation_figures`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import itertools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from IPython import get_ipython
from IPython.core.pylabtools import select_figure_formats
from IPython.display import display
from matplotlib.figure import Figure

from experiments.figures import style
from experiments.figures.registry import figure_module

ROUTER_FILES = ("routers.csv", "curves.csv")
SYNTHETIC_PROMPTS = 300
SYNTHETIC_SEED = 0
SYNTHETIC_ROUTERS = "random,oracle,knn,mlp,mf,zooter,routet2i,ecvl-quality"
CLAIM_COLUMNS = ["claim", "paper", "ours", "verdict", "note"]


class MissingResultError(ValueError):
    """A CSV a notebook needs is not in its results folder."""


def setup_display() -> None:
    """Pandas display options of the notebooks, and matplotlib Figures shown as PNGs
    (`style` selects the Agg backend, which leaves IPython no figure display of its own)."""
    pd.set_option("display.precision", 3)
    pd.set_option("display.width", 160)
    shell = get_ipython()
    if shell is not None:
        select_figure_formats(shell, {"png"})


def show_figure(figure: Figure) -> None:
    """Display `figure` and close it (pyplot keeps every figure open until closed)."""
    display(figure)
    style.plt.close(figure)


def find_results() -> Path:
    """$T2ISIM_RESULTS, else results/ of the repository holding the working directory."""
    if os.environ.get("T2ISIM_RESULTS"):
        return Path(os.environ["T2ISIM_RESULTS"]).expanduser().resolve()
    for folder in (Path.cwd(), *Path.cwd().parents):
        if (folder / "pyproject.toml").is_file() and (folder / "experiments").is_dir():
            return folder / "results"
    raise MissingResultError("no repository above the working directory; set T2ISIM_RESULTS")


def find_validation() -> Path:
    """$T2ISIM_VALIDATION (a folder of `t2isim validate --out` folders), else the validation
    folder of the results (`find_results() / "validation"`)."""
    if os.environ.get("T2ISIM_VALIDATION"):
        return Path(os.environ["T2ISIM_VALIDATION"]).expanduser().resolve()
    return find_results() / "validation"


@dataclass(frozen=True)
class FigureResults:
    """The folder of figure CSVs a notebook reads."""

    folder: Path

    def require(self, names: Sequence[str]) -> None:
        """Fail naming the missing CSVs and the command that writes them."""
        missing = [n for n in names if not (self.folder / f"{n}.csv").is_file()]
        if missing:
            raise MissingResultError(
                f"{', '.join(f'{n}.csv' for n in missing)} not found in {self.folder}: run "
                f"`t2isim figures --quick --only {','.join(missing)} --out {self.folder}` "
                "or set T2ISIM_RESULTS"
            )

    def read(self, name: str) -> pd.DataFrame:
        self.require([name])
        return pd.read_csv(self.folder / f"{name}.csv")

    def show(self, name: str) -> pd.DataFrame:
        """NAME.csv drawn by its module's `plot(data)` (a table without one: the data) and
        displayed; returns the data."""
        data = self.read(name)
        module = figure_module(name)
        if module.plot is None:
            display(data)
        else:
            show_figure(module.plot(data))
        return data


def open_results(figures: Sequence[str]) -> FigureResults:
    """The notebook's results folder, checked to hold every figure's CSV (set-up cell)."""
    setup_display()
    results = FigureResults(find_results())
    results.require(figures)
    print(f"results: {results.folder}")
    return results


def claims(name: str, data: pd.DataFrame) -> pd.DataFrame:
    """The paper's claims figure NAME checks: the paper's number, ours, the verdict."""
    rows = [dataclasses.asdict(c) for c in figure_module(name).claims(data)]
    return pd.DataFrame(rows, columns=CLAIM_COLUMNS)


# ----------------------------------------------------------------------------- routers


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
    frame = pd.DataFrame({"prompt": texts, "edge": edge, "mid": mid, "cloud": cloud})
    frame.to_csv(path, index=False)
    return path


def evaluate_synthetic(folder: Path) -> Path:
    """`t2isim routers evaluate` of SYNTHETIC_ROUTERS on a seeded synthetic CSV written in
    `folder` (bag-of-words features; console tables silenced); returns its output folder."""
    from routers.cli import evaluate

    wide = synthetic_wide_csv(folder / "synthetic.csv", SYNTHETIC_PROMPTS, SYNTHETIC_SEED)
    out = folder / "routers"  # evaluate writes a new folder
    with contextlib.redirect_stdout(io.StringIO()):
        evaluate(
            data=str(wide),
            out=out,
            routers=SYNTHETIC_ROUTERS,
            seed=SYNTHETIC_SEED,
            features="bow",
            epochs=20,
        )
    print(f"evaluated {SYNTHETIC_ROUTERS} on {SYNTHETIC_PROMPTS} synthetic prompts")
    return out


def router_results(scratch: Path) -> Path:
    """$T2ISIM_ROUTERS, or (unset) the synthetic evaluation written under `scratch`, checked
    to hold ROUTER_FILES."""
    setup_display()
    if os.environ.get("T2ISIM_ROUTERS"):
        folder = Path(os.environ["T2ISIM_ROUTERS"]).expanduser().resolve()
    else:
        folder = evaluate_synthetic(scratch)
    missing = [f for f in ROUTER_FILES if not (folder / f).is_file()]
    if missing:
        raise MissingResultError(
            f"{', '.join(missing)} not found in {folder}: run `t2isim routers evaluate "
            f"--data FILE.csv|hadis-artifact --out {folder}` or unset T2ISIM_ROUTERS"
        )
    print(f"routers: {folder}")
    return folder


def plot_router_curves(curves: pd.DataFrame, ax=None) -> Figure:
    """Routed test quality (first axes) and ΔP, the share of the light→heavy gap recovered
    (second), vs heavy share per router (curves.csv of `t2isim routers evaluate`)."""
    width_in, height_in = 2 * style.COLUMN_IN, 1.4 * style.ROW_IN
    fig, axes = style.figure_axes(ax, 1, 2, width_in=width_in, height_in=height_in)
    reference = {"oracle": ("k", "--"), "random": ("0.5", ":")}
    palette = itertools.cycle([f"C{k}" for k in (0, 1, 2, 3, 4, 5, 6, 8, 9)])  # no grey
    for router, rows in curves.groupby("router", sort=False):
        color, ls = reference[router] if router in reference else (next(palette), "-")
        for panel, column in zip(axes[0], ("quality", "dp")):
            panel.plot(
                rows["heavy_share"], rows[column], color=color, ls=ls, marker=".", label=router
            )
    axes[0, 0].set(xlabel="heavy share", ylabel="routed mean quality (test)")
    axes[0, 1].set(xlabel="heavy share", ylabel="ΔP (gap recovered)")
    axes[0, 1].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig
