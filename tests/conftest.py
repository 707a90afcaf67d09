"""Shared test fixtures."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def one_thread():
    """Run a test with one torch thread: for tiny tensors one thread is much faster than two on a
    busy 2-core machine. Modules of tiny-model tests opt in with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def book_html(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The book's HTML, built once per test session from the committed outputs (``jupyter-book build``,
    Sphinx warnings as errors): the folder that holds ``index.html`` and ``book/*.html``."""
    exe = Path(sys.executable).with_name("jupyter-book")
    jb = str(exe) if exe.exists() else shutil.which("jupyter-book")
    assert jb, "jupyter-book is not installed (pip install -e '.[book]')"
    out = tmp_path_factory.mktemp("book")
    proc = subprocess.run([jb, "build", str(ROOT), "--path-output", str(out), "--warningiserror",
                           "--keep-going", "--quiet"], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"book build failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return out / "_build" / "html"
