"""Build the notebooks of experiments/notebooks/ from their jupytext percent-format sources.

    python experiments/notebooks/build_notebooks.py           # (re)write every NN_*.ipynb
    python experiments/notebooks/build_notebooks.py --check   # exit 1 if one is stale

Each notebook NN_topic.ipynb is its source NN_topic.py (`# %%` code cells, `# %% [markdown]`
text cells; the code they share lives in helpers.py) converted by jupytext, written without
outputs, with fixed cell ids and without jupytext's own metadata, so rebuilding is
byte-identical. A cell that draws figure NAME carries the tag `figure` and the metadata
`t2isim_figure: NAME` (source: `# %% tags=["figure"] t2isim_figure="NAME"`); the notebook
metadata `t2isim.figures` lists them in order.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jupytext
import nbformat

HERE = Path(__file__).resolve().parent


def sources(folder: Path = HERE) -> list[Path]:
    """The notebook sources: NN_topic.py files, in name order."""
    return sorted(folder.glob("[0-9][0-9]_*.py"))


def build(source: Path) -> nbformat.NotebookNode:
    """The notebook of one percent-format source."""
    nb = jupytext.read(source, fmt="py:percent")
    nb.metadata.pop("jupytext", None)
    nb.metadata["language_info"] = {"name": "python"}
    figures = []
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i:02d}"
        if "figure" in cell.metadata.get("tags", []):
            if "t2isim_figure" not in cell.metadata:
                raise ValueError(
                    f"{source.name}: cell {i} is tagged 'figure' without t2isim_figure=\"NAME\""
                )
            figures.append(cell.metadata["t2isim_figure"])
    nb.metadata["t2isim"] = {"figures": figures}
    return nb


def build_all() -> dict[str, nbformat.NotebookNode]:
    """File name -> notebook, for every source of this folder."""
    return {source.with_suffix(".ipynb").name: build(source) for source in sources()}


def render(nb: nbformat.NotebookNode) -> str:
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
