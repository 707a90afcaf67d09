"""cobra.nbval_plugin inside a real nbval run: rounding validates, a changed number fails, marks are honoured."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

pytestmark = pytest.mark.book


def _notebook(path: Path, cells: list[tuple[str, str]]) -> Path:
    """A notebook whose code cells have ``source`` and a committed stdout ``committed``."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    for i, (source, committed) in enumerate(cells, start=1):
        cell = nbformat.v4.new_code_cell(source, execution_count=i)
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=committed)]
        nb.cells.append(cell)
    nbformat.write(nb, path)
    return path


def _nbval(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "cobra.nbval_plugin", "-p", "no:cacheprovider",
                           "--nbval", "--nbval-current-env", "-q", path.name],
                          cwd=path.parent, capture_output=True, text=True, timeout=300)


def test_rounding_passes_and_a_real_change_fails(tmp_path: Path):
    nb = _notebook(tmp_path / "tiny.ipynb", [
        ("print(f'inertia {756.0107:.4f}')", "inertia 756.0108\n"),  # last digit: another CPU
        ("print('rate', round(0.229, 4))", "rate 0.2290\n"),  # same value, other formatting
        ("print(f'NDCG {0.0830:.4f}')  # nbval-rtol: 0.03 -- stands for a cell that trains", "NDCG 0.0813\n"),
        ("print(f'collisions {0.4358:.4f}')", "collisions 0.4269\n"),  # a flipped assignment: must fail
        ("print('users', 942)", "users 943\n"),  # a count: must fail
    ])
    proc = _nbval(nb)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "2 failed, 3 passed" in out, out
    assert "Cell 3" in out and "number differs beyond rtol=0.001: committed 0.4269, now 0.4358" in out
    assert "Cell 4" in out and "committed 943, now 942" in out


def test_the_makefile_perturbs_as_the_plugin_and_the_tests_do():
    """`make test`'s second nbval pass sets exactly cobra.nbval_plugin.PERTURBED (which tests reuse)."""
    from cobra.nbval_plugin import PERTURBED

    text = (Path(__file__).resolve().parents[1] / "Makefile").read_text().replace("\\\n", " ")
    line = next(ln for ln in text.splitlines() if ln.startswith("PERTURBED :="))
    assert dict(kv.split("=", 1) for kv in line.removeprefix("PERTURBED :=").split()) == PERTURBED
