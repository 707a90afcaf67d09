"""The package, the tests and the chapter sources pass ``ruff check`` (the rules in pyproject.toml), so the
README's test command catches what ``make lint`` would."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_code_passes_ruff():
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is None:
        pytest.fail("ruff is not installed: pip install -e '.[test]' (the README's set-up installs it)")
    chapters = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "book").glob("[0-9][0-9]_*.py"))
    proc = subprocess.run([ruff, "check", "--no-cache", "cobra", "tests", *chapters], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 0, f"ruff check found problems:\n{proc.stdout[-4000:]}{proc.stderr[-2000:]}"
