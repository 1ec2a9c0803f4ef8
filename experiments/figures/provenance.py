"""Which code made each committed figure: per-figure source hashes in ``provenance.json``.

A figure's result depends on its module, every project module that module imports (directly,
inside functions, or transitively) and the data files of those packages (e.g. the default
bundle's fitted parameters), plus the versions of the numerical libraries that decide its
numbers. `figure_provenance` hashes exactly that set, found by reading the import statements
of the sources (no import is executed), so a change to code a figure does not use leaves its
entry current. A source is hashed without its comments, docstrings and blank lines
(`code_text`): an edit to the prose leaves the figures current, an edit to what runs does not.

`t2isim figures` records one entry per figure it wrote in ``OUT/provenance.json`` (merged, so
``--only fig13`` updates fig13's entry alone); `stale_figures` lists the figures whose entry is
missing or differs from the code now, which a test runs against the committed ``results/``.
"""

from __future__ import annotations

import ast
import hashlib
import io
import json
import tokenize
from collections.abc import Iterable, Mapping
from functools import cache
from importlib import metadata
from pathlib import Path

from simulator.atomic import atomic_write_text

ROOT = Path(__file__).resolve().parents[2]
PROJECT_PACKAGES = ("simulator", "policies", "routers", "experiments", "profiler")
# the libraries whose versions are known to change the figures' numbers (pinned exactly in
# pyproject.toml; numpy and scipy were checked not to, across the ranges pinned there)
NUMERIC_LIBRARIES = ("highspy",)
PROVENANCE_FILE = "provenance.json"


def _module_file(module: str) -> Path | None:
    """The source file of a project module name, or None if it is not one of ours."""
    parts = module.split(".")
    if parts[0] not in PROJECT_PACKAGES:
        return None
    base = ROOT.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported_modules(path: Path) -> set[str]:
    """Every project module named by an import statement anywhere in `path` (with the
    packages that enclose it, which Python runs on import)."""
    names: set[str] = set()
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    if path.name == "__init__.py":
        package = package.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    closed = set()
    for name in names:
        parts = name.split(".")
        closed.update(".".join(parts[: i + 1]) for i in range(len(parts)))
    return {name for name in closed if _module_file(name) is not None}


@cache
def _dependency_files(module: str) -> tuple[Path, ...]:
    """The source files of `module` and of every project module it reaches, plus the data
    files of the packages involved, sorted."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(_imported_modules(_module_file(name)) - seen)
    files = {_module_file(name) for name in seen}
    for package in {name.split(".")[0] for name in seen}:
        data = ROOT / package / "data"
        if data.is_dir():
            files.update(p for p in data.rglob("*") if p.is_file() and p.suffix != ".pyc")
    return tuple(sorted(files))


def _docstring_lines(source: str) -> set[int]:
    """0-based numbers of the lines that hold nothing but a module's, class's or function's
    docstring."""
    lines = source.split("\n")
    dropped: set[int] = set()
    scopes = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, scopes) or not node.body:
            continue
        first = node.body[0]
        if not (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)):
            continue
        if not isinstance(first.value.value, str):
            continue
        before = lines[first.lineno - 1].encode()[: first.col_offset]
        after = lines[first.end_lineno - 1].encode()[first.end_col_offset :].strip()
        if before.strip() == b"" and (after == b"" or after.startswith(b"#")):
            dropped.update(range(first.lineno - 1, first.end_lineno))
    return dropped


def code_text(path: Path) -> bytes:
    """A Python source without its comments, docstrings, trailing spaces and blank lines: what
    runs (the lines inside other multi-line strings stay as they are). A file that reads
    `__doc__` keeps its docstrings, which are then part of what it does."""
    source = path.read_text(encoding="utf-8")
    comment_at: dict[int, int] = {}
    verbatim: set[int] = set()  # 0-based lines continuing a multi-line string
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            comment_at[token.start[0] - 1] = token.start[1]
        elif token.end[0] > token.start[0] and token.type not in (tokenize.NL, tokenize.NEWLINE):
            verbatim.update(range(token.start[0], token.end[0]))
    dropped = set() if "__doc__" in source else _docstring_lines(source)
    kept = []
    for number, line in enumerate(source.split("\n")):
        if number in dropped:
            continue
        if number in verbatim:
            kept.append(line)
        elif code := line[: comment_at.get(number, len(line))].rstrip():
            kept.append(code)
    return "\n".join(kept).encode()


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries that decide the numbers."""
    versions = {}
    for name in NUMERIC_LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def figure_provenance(module: str) -> dict[str, object]:
    """{'code': sha256 over the figure's dependency files (paths, and the code of sources or
    the bytes of data files), 'files': how many, 'libraries': versions} for the figure module
    named `module`."""
    digest = hashlib.sha256()
    files = _dependency_files(module)
    for path in files:
        digest.update(path.relative_to(ROOT).as_posix().encode())
        digest.update(code_text(path) if path.suffix == ".py" else path.read_bytes())
    return {"code": digest.hexdigest()[:16], "files": len(files), "libraries": library_versions()}


def read_provenance(out_dir: Path) -> dict[str, dict]:
    path = Path(out_dir) / PROVENANCE_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def record_provenance(
    out_dir: Path, modules: Mapping[str, str], context: Mapping[str, object]
) -> Path:
    """Merge an entry {provenance + context (mode, seed, bundle)} for each figure NAME ->
    module name into OUT/provenance.json (atomically)."""
    entries = read_provenance(out_dir)
    for name, module in modules.items():
        entries[name] = {**figure_provenance(module), **context}
    path = Path(out_dir) / PROVENANCE_FILE
    atomic_write_text(path, json.dumps(entries, indent=2, sort_keys=True) + "\n")
    return path


def stale_figures(
    out_dir: Path, modules: Mapping[str, str], context: Mapping[str, object]
) -> dict[str, str]:
    """NAME -> why, for each figure whose recorded entry is missing, was made by other code
    or library versions, or with another context (e.g. quick mode) than `context`."""
    entries = read_provenance(out_dir)
    stale = {}
    for name, module in modules.items():
        entry = entries.get(name)
        if entry is None:
            stale[name] = "no provenance entry"
            continue
        now = {**figure_provenance(module), **context}
        changed = [key for key in sorted(now) if entry.get(key) != now[key]]
        if changed:
            stale[name] = "changed since it was made: " + ", ".join(changed)
    return stale


def report_context(bundle_spec: str, quick: bool, seed: int) -> dict[str, object]:
    """The run settings a figure entry must match besides code: bundle, mode and seed."""
    return {"bundle": bundle_spec, "mode": "quick" if quick else "full", "seed": seed}


def module_names(names: Iterable[str]) -> dict[str, str]:
    """Figure NAME -> its module's dotted name, for the given figure names."""
    from experiments.figures.registry import figure_modules

    modules = figure_modules()
    return {name: modules[name].__name__ for name in names}
