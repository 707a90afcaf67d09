"""The chapters' exercises: checks that can fail, solutions that pass them, and the student editions."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jupytext
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
