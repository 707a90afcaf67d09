"""The chapters' exercises: checks that can fail, solutions that pass them, and the student editions."""

from __future__ import annotations

import ast
import builtins
import json
import re
from pathlib import Path

import jupytext
import nbformat
import pytest

from cobra.book import SOLUTION_TAG, STUDENT_DIR, chapters, student_edition
from cobra.exercises import EXERCISES, check, is_right

CHECK_CALL = re.compile(r"""check\("(\d\d\.\d+)",""")
EXERCISE = re.compile(r"```\{exercise\}.*?```", re.S)


def _solution_checks(py: Path) -> list[str]:
    """Keys of the check() calls in the chapter's solution cells."""
    nb = jupytext.read(py)
    return [key for c in nb.cells if c.cell_type == "code" and SOLUTION_TAG in c.metadata.get("tags", [])
            for key in CHECK_CALL.findall(c.source)]


@pytest.mark.parametrize("key", sorted(EXERCISES))
def test_the_solution_passes_its_check_and_a_wrong_answer_fails(key, capsys):
    right = EXERCISES[key].solve()
    assert is_right(key, right)
    if isinstance(right, str):
        wrong = right + "?"
    elif isinstance(right, tuple):
        wrong = right[:-1] if isinstance(right[0], str) else tuple(v + 1 for v in right)
    else:
        wrong = right * 1.5 + 1
    assert not is_right(key, wrong) and not is_right(key, "twelve")
    check(key, wrong)
    assert "not yet. Hint:" in capsys.readouterr().out


def test_every_check_is_used_by_a_chapter_solution_and_says_right_there():
    """The committed outputs of each solution cell print ``right.`` (nbval re-runs those cells and compares)."""
    used = set()
    for py in chapters():
        keys = _solution_checks(py)
        used |= set(keys)
        if not keys:
            continue
        outputs = "".join("".join(o.get("text", "")) for c in json.loads(py.with_suffix(".ipynb").read_text())["cells"]
                          if c["cell_type"] == "code" for o in c.get("outputs", []))
        for key in keys:
            assert f"exercise {key}: right." in outputs, f"{py.name}: the solution of {key} does not pass its check"
    assert used == set(EXERCISES), f"checks no chapter uses: {sorted(set(EXERCISES) - used)}"
    with pytest.raises(KeyError, match="no exercise '99.9'"):
        is_right("99.9", 1)


@pytest.mark.parametrize("py", [p for p in chapters() if "{exercise}" in p.read_text()], ids=lambda p: p.stem)
def test_exercises_state_their_time_and_solutions_fold(py: Path):
    text = py.read_text()
    for block in EXERCISE.findall(text.replace("\n# ", "\n")):
        assert re.search(r"\*(About|A few|An?|Under|Less than)\b[^*]*\b(second|minute|hour)s?\.?\*", block), \
            f"{py.name}: no time in\n{block}"
    for start in re.findall(r"````\{solution-start\}.*?````", text, re.S):
        assert ":class: dropdown" in start, f"{py.name}: a solution that is not folded: {start}"


@pytest.mark.parametrize("py", chapters(), ids=lambda p: p.stem)
def test_student_editions_are_generated_and_in_sync(py: Path):
    student = student_edition(py)
    sources = "\n".join(c.source for c in student.cells)
    assert "solution-start" not in sources and "solution-end" not in sources
    assert all(SOLUTION_TAG not in c.metadata.get("tags", []) for c in student.cells)
    assert all(not c.get("outputs") for c in student.cells if c.cell_type == "code")
    if "{exercise}" in py.read_text():
        assert "from cobra.exercises import check" in sources  # a student can still check an answer
    committed = STUDENT_DIR / py.with_suffix(".ipynb").name
    assert committed.exists(), f"{committed} is missing: run `python -m cobra.book --student`"
    assert jupytext.writes(student, fmt="ipynb") == committed.read_text(), \
        f"{committed.name} is out of date: run `python -m cobra.book --student`"


def _bound_and_read(source: str) -> tuple[set[str], set[str]]:
    """The names a code cell binds (assignments, defs, imports, arguments) and the names it reads."""
    code = "\n".join(ln for ln in source.splitlines() if not ln.lstrip().startswith(("%", "!")))
    bound, read = set(), set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Name):
            (read if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
    return bound, read


def _names_only_a_solution_binds(nb) -> list[tuple[int, list[str]]]:
    """``(cell index, names)``: cells left in the student edition that read a name only a solution binds."""
    student, solutions, found = set(dir(builtins)), set(), []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        bound, read = _bound_and_read(cell.source)
        if SOLUTION_TAG in cell.metadata.get("tags", []):
            solutions |= bound - student
        else:
            if missing := sorted((read & solutions) - student - bound):
                found.append((i, missing))
            student |= bound
    return found


@pytest.mark.parametrize("py", chapters(), ids=lambda p: p.stem)
def test_student_editions_need_nothing_a_solution_defines(py: Path):
    """A student edition runs top to bottom without the solutions: no later cell reads what only they bind."""
    assert _names_only_a_solution_binds(jupytext.read(py)) == []


def test_a_cell_that_needs_a_solution_is_found():
    cells = [nbformat.v4.new_code_cell("data = [3, 1, 2]"),
             nbformat.v4.new_code_cell("answer = sorted(data)", metadata={"tags": [SOLUTION_TAG]}),
             nbformat.v4.new_code_cell("data = data + [4]\nprint(answer[0], len(data))")]
    assert _names_only_a_solution_binds(nbformat.v4.new_notebook(cells=cells)) == [(2, ["answer"])]

