"""Serve MathJax from the book itself, so its math renders without a network.

Sphinx loads MathJax 3 from a CDN by default. This extension points ``mathjax_path`` at a copy inside the
build (``_static/mathjax/es5/tex-mml-chtml.js``) and copies, after the build, the files that bundle needs:
the TeX + MathML input / CommonHTML output bundle and its web fonts. They come from the
``django-static-mathjax`` wheel on PyPI, which is nothing but the MathJax 3 distribution (no Django needed;
the ``book`` extra installs it). A reader who opens the HTML offline, and the browser test, see rendered math.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.errors import ExtensionError

BUNDLE = "es5/tex-mml-chtml.js"
FONTS = "es5/output/chtml/fonts/woff-v2"


def mathjax_dir() -> Path:
    """The MathJax 3 distribution's root (the folder that holds ``es5/``)."""
    spec = importlib.util.find_spec("mathjax")
    root = Path(next(iter(spec.submodule_search_locations))) / "static" / "mathjax" if spec and \
        spec.submodule_search_locations else None
    if root is None or not (root / BUNDLE).is_file():
        raise ExtensionError("MathJax 3 is not installed for the book build: pip install -e '.[book]' "
                             "(it brings the django-static-mathjax wheel, which holds MathJax's files)")
    return root


def _use_local(app: Sphinx) -> None:
    mathjax_dir()  # fail at the start of a build, not at its end
    app.config.mathjax_path = f"mathjax/{BUNDLE}"


def _copy(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    src, dst = mathjax_dir(), Path(app.outdir) / "_static" / "mathjax"
    (dst / BUNDLE).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src / BUNDLE, dst / BUNDLE)
    shutil.copytree(src / FONTS, dst / FONTS, dirs_exist_ok=True)


def setup(app: Sphinx) -> dict[str, object]:
    app.connect("builder-inited", _use_local)
    app.connect("build-finished", _copy)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
