"""Chapter support: the setup cell every chapter runs, and the tools that keep
``book/NN_slug.py`` (jupytext py:percent, the file you edit) and
``book/NN_slug.ipynb`` (its pair, with committed outputs) in step.

    python -m cobra.book                 # re-execute every chapter, rewrite its .ipynb
    python -m cobra.book book/01_data.py # just one
    python -m cobra.book --check         # fail if a pair is missing or out of sync

Notebook outputs are produced under the ``cpu`` profile and checked by nbval,
so :func:`setup` makes a run deterministic and keeps volatile text (progress
bars) out of the outputs.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
from pathlib import Path

import numpy as np

from cobra.config import Profile, atomic_write, get_profile

BOOK_DIR = Path(__file__).resolve().parent.parent / "book"
PAIRING = "ipynb,py:percent"


def setup(seed: int | None = None, profile: str | None = None) -> Profile:
    """The first code cell of every chapter.

    Picks the profile (``$COBRA_PROFILE``, default ``cpu``), seeds Python,
    NumPy and torch, makes CPU kernels deterministic, turns progress bars
    off (they are volatile output that nbval would compare) and sets plot
    defaults (retina PNGs in a notebook). Returns the :class:`~cobra.config.Profile`.
    """
    import torch

    prof = get_profile(profile)
    seed = prof.seed if seed is None else seed
    os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - seeds code that uses the legacy global RNG
    torch.manual_seed(seed)
    if prof.device == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        import matplotlib as mpl

        mpl.rcParams.update({"figure.dpi": 100, "figure.figsize": (7.0, 3.6), "axes.grid": True,
                             "grid.alpha": 0.3, "axes.spines.top": False, "axes.spines.right": False})
    except ImportError:  # pragma: no cover - matplotlib is a dependency
        pass
    try:  # in a notebook: PNGs at twice the pixels, shown at their size, so figures stay sharp on HiDPI screens
        from IPython import get_ipython
        from matplotlib_inline.backend_inline import set_matplotlib_formats

        if get_ipython() is not None:
            set_matplotlib_formats("retina")
    except ImportError:  # a chapter run as a plain script
        pass
    return prof


def claim(ok: bool, statement: str) -> None:
    """A statement the chapter's text makes about an output computed above it, checked.

    The prose is written for the ``cpu`` profile's outputs (the committed notebooks): there a claim that no
    longer holds is an error, so text and numbers cannot drift apart. Under another profile (other data,
    other sizes) the numbers are different and a claim that fails prints a note instead.
    """
    if ok:
        return
    if get_profile().name == "cpu":
        raise AssertionError(f"the text says: {statement}")
    print(f"(the text's claim '{statement}' is about the cpu profile; it does not hold here)")


GLUE_PREFIX = "application/papermill.record/"


def glue(name: str, value: object) -> object:
    """Record ``value`` under ``name`` for the chapter's prose, and return it.

    The chapter's text then quotes it with MyST-NB's role, e.g. ``{glue:text}`ndcg:.4f```, so a
    number in a sentence is always the one the code computed (nbval checks the stored value like any
    other output). The output has MyST-NB's glue format and is hidden in the rendered page; unlike
    ``myst_nb.glue`` this needs no Sphinx in the kernel.

    Args:
        name: key, unique within the chapter.
        value: a number or a string (stored as its ``repr``); numpy scalars are stored as Python numbers.

    Returns:
        ``value`` unchanged, so ``x = glue("x", compute())`` reads naturally.
    """
    shown = value.item() if isinstance(value, np.generic) else value
    if not isinstance(shown, (int, float, str)):
        raise TypeError(f"glue({name!r}, ...) takes a number or a string, not {type(value).__name__}")
    try:
        from IPython.display import display
    except ImportError:  # a chapter run as a plain script (python book/NN_slug.py): nothing to record into
        return value
    display({GLUE_PREFIX + "text/plain": repr(shown)}, raw=True,
            metadata={"scrapbook": {"name": name, "mime_prefix": GLUE_PREFIX}})
    return value


def compute_device(profile: Profile) -> str:
    """``"cuda"`` where the profile asks for a GPU and torch sees one, else ``"cpu"``: where a chapter runs its
    heavy fits (semantic IDs on the ``4090d`` profile's 27k x 1024 vectors)."""
    import torch

    return "cuda" if profile.device == "cuda" and torch.cuda.is_available() else "cpu"


PAIR_LIMIT = 5_000  # rows beyond which a chapter's N x N matrix is taken over a sample (27k^2 floats: 2.9 GB)


def subsample(n: int, limit: int = PAIR_LIMIT, seed: int = 0) -> np.ndarray:
    """Rows for a chapter's N x N computation: all ``n`` (``arange``) up to ``limit``, else ``limit`` random
    rows in ascending order, so the ``4090d`` profile's 27k items do not need an N x N matrix in memory."""
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))


def load_result(name: str, book_dir: Path = BOOK_DIR) -> dict:
    """A benchmark result committed under ``book/results/<name>.json`` (its ``command`` key says how to remake it).

    Chapters load these when the benchmark takes longer than a chapter may (many trainings).
    """
    import json

    path = book_dir / "results" / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; it is part of the repository (git checkout {path})")
    return json.loads(path.read_text())


def chapters(book_dir: Path = BOOK_DIR) -> list[Path]:
    """The chapter sources ``book/NN_*.py`` in order."""
    return sorted(p for p in book_dir.glob("[0-9][0-9]_*.py"))


def pairing_problems(book_dir: Path = BOOK_DIR) -> list[str]:
    """Every chapter whose ``.ipynb`` pair is missing or whose cells differ from the ``.py``."""
    import jupytext

    problems = []
    for py in chapters(book_dir):
        nb_path = py.with_suffix(".ipynb")
        if not nb_path.exists():
            problems.append(f"{nb_path.name} is missing: run `python -m cobra.book {py}`")
            continue
        src = jupytext.read(py)
        pair = jupytext.read(nb_path)
        a = [(c.cell_type, c.source.strip()) for c in src.cells]
        b = [(c.cell_type, c.source.strip()) for c in pair.cells]
        if a != b:
            first = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
            problems.append(f"{nb_path.name} is out of sync with {py.name} (first difference at cell {first}): "
                            f"run `python -m cobra.book {py}`")
    return problems


SOLUTION_TAG = "solution"  # cells with this jupytext tag are left out of the student edition
STUDENT_DIR = BOOK_DIR.parent / "student"


def student_edition(py: Path):
    """Chapter ``py`` for students, as a notebook: every cell tagged ``solution`` is left out (the solutions
    and their ``{solution-start}`` / ``{solution-end}`` fences) and no cell has outputs; the exercises and the
    ``cobra.exercises.check`` import stay, so a student can check an answer."""
    import jupytext

    nb = jupytext.read(py)
    nb.cells = [c for c in nb.cells if SOLUTION_TAG not in c.metadata.get("tags", [])]
    for i, cell in enumerate(nb.cells):
        cell.id = f"cell-{i}"  # stable ids, so a regenerated edition is byte-identical
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nb.metadata.pop("jupytext", None)
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    return nb


def write_student_editions(out: Path = STUDENT_DIR) -> list[Path]:
    """Write the student edition of every chapter to ``out/NN_slug.ipynb`` (see :func:`student_edition`)."""
    import jupytext

    out.mkdir(parents=True, exist_ok=True)
    return [atomic_write(out / py.with_suffix(".ipynb").name, jupytext.writes(student_edition(py), fmt="ipynb"))
            for py in chapters()]


def execute(py: Path, timeout: int = 1800) -> Path:
    """Run chapter ``py`` top to bottom in a fresh kernel and write its paired ``.ipynb``."""
    import jupytext
    from nbclient import NotebookClient

    nb = jupytext.read(py)
    nb.metadata.setdefault("jupytext", {})["formats"] = PAIRING
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    env_profile = os.environ.setdefault("COBRA_PROFILE", "cpu")
    if env_profile != "cpu":
        raise SystemExit("committed outputs come from the cpu profile: unset COBRA_PROFILE")
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(py.parent)}})
    client.execute()
    return atomic_write(py.with_suffix(".ipynb"), jupytext.writes(nb, fmt="ipynb"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cobra.book", description=__doc__.split("\n\n")[0])
    parser.add_argument("chapters", nargs="*", type=Path, help="chapter .py files (default: all)")
    parser.add_argument("--check", action="store_true", help="only check the .py/.ipynb pairing")
    parser.add_argument("--student", action="store_true",
                        help=f"write the student editions (solutions left out) to {STUDENT_DIR.name}/")
    args = parser.parse_args(argv)
    if args.student:
        for path in write_student_editions():
            print(f"wrote {path}")
        return 0
    if args.check:
        problems = pairing_problems()
        print("\n".join(problems) or f"{len(chapters())} chapters paired and in sync")
        return 1 if problems else 0
    for py in args.chapters or chapters():
        print(f"executing {py} ...", flush=True)
        print(f"  wrote {execute(py)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
