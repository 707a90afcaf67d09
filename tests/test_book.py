"""The book toolchain: chapter pairing, notebook health, the Jupyter Book build.

nbval itself runs over ``book/*.ipynb`` in the same pytest call (see the
Makefile's ``test`` target); these tests check what nbval does not.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from cobra.book import chapters, pairing_problems

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.book


def toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [c["file"] for c in part["chapters"]]
    return files


def test_every_chapter_is_paired_and_in_sync():
    assert chapters(), "no chapters found under book/"
    assert pairing_problems() == []


def test_every_chapter_is_in_the_toc():
    listed = set(toc_files())
    missing = [p.with_suffix("").relative_to(ROOT).as_posix() for p in chapters()
               if p.with_suffix("").relative_to(ROOT).as_posix() not in listed]
    assert not missing, f"chapters missing from _toc.yml: {missing}"


@pytest.mark.parametrize("nb_path", [p.with_suffix(".ipynb") for p in chapters()], ids=lambda p: p.name)
def test_committed_outputs_are_complete_and_clean(nb_path: Path):
    """Every code cell was executed (the pair has outputs) and none raised."""
    nb = json.loads(nb_path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code, f"{nb_path.name} has no code cells"
    unexecuted = [i for i, c in enumerate(code) if c.get("execution_count") is None]
    assert not unexecuted, f"{nb_path.name}: code cells {unexecuted} were never executed"
    errors = [i for i, c in enumerate(code) for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, f"{nb_path.name}: code cells {errors} hold an error output"
    counts = [c["execution_count"] for c in code]
    assert counts == list(range(1, len(code) + 1)), f"{nb_path.name} was not run top to bottom in one kernel"


COLUMN = 88  # characters of code or text output that fit the book's content column at 1280 px


@pytest.mark.parametrize("nb_path", [p.with_suffix(".ipynb") for p in chapters()], ids=lambda p: p.name)
def test_code_and_text_outputs_fit_the_column(nb_path: Path):
    """No code line and no line of printed text is wider than the rendered page's content column (a table shown
    as HTML wraps or scrolls on its own; its plain-text twin is not shown)."""
    nb = json.loads(nb_path.read_text())
    wide = []
    for i, cell in enumerate(c for c in nb["cells"] if c["cell_type"] == "code"):
        texts = ["".join(cell["source"])]
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                texts.append("".join(out["text"]))
            elif "text/plain" in out.get("data", {}) and "text/html" not in out["data"] and \
                    not any(k.startswith("image/") for k in out["data"]):
                texts.append("".join(out["data"]["text/plain"]))
        wide += [f"cell {i}: {line[:60]}... ({len(line)})" for text in texts for line in text.splitlines()
                 if len(line) > COLUMN]
    assert not wide, f"{nb_path.name}: lines wider than {COLUMN} characters:\n" + "\n".join(wide[:20])


@pytest.mark.slow
def test_book_builds_without_warnings(book_html: Path):
    """``jupyter-book build`` from the committed outputs, warnings as errors (the ``book_html`` fixture); a page
    per toc entry, and MathJax served from the book."""
    html = book_html
    assert (html / "_static" / "mathjax" / "es5" / "tex-mml-chtml.js").is_file()
    for entry in toc_files():
        page = html / f"{entry}.html"
        assert page.exists(), f"no page for toc entry {entry}"
        text = page.read_text()
        assert "output traceback" not in text and "output error" not in text, f"{page.name} shows an error"


def test_readme_tables_match_the_committed_results():
    """The README's result tables quote book/results/*.json, the files the chapters plot."""
    from cobra.bench.quality import committed_machine_rows, machine_rows, readme_rows
    from cobra.book import load_result
    from cobra.presets import get_preset
    from cobra.stats import compare

    readme = (ROOT / "README.md").read_text().splitlines()

    def cells(m: dict) -> str:  # "| HR@10 mean ± std | NDCG@10 mean ± std |"
        return f"| {m['hr@10_mean']:.4f} ± {m['hr@10_std']:.4f} | {m['ndcg@10_mean']:.4f} ± {m['ndcg@10_std']:.4f} |"

    def row(prefix: str) -> str:
        found = [line for line in readme if line.startswith(prefix)]
        assert len(found) == 1, f"README has {len(found)} rows starting with {prefix!r}"
        return found[0]

    for line in readme_rows(load_result("bench_quality")):  # the results table, regenerated from the file
        assert line in readme, f"README lacks the results row {line!r}"
    for line in machine_rows(committed_machine_rows()):  # the same protocol on the CPU and on a GPU
        assert line in readme, f"README lacks the row {line!r} of the CPU-GPU table"
    text = " ".join(" ".join(readme).split())
    main = load_result("bench_quality")["models"]

    def quotes_pairs(cobra: dict, digits: dict[str, int]) -> None:  # "HSTU-direct (−0.0015, ... p = 0.41)"
        for name, label in (("hstu-cpu", "HSTU-direct ("), ("hstu-sid-cpu", "HSTU + PrefixN (")):
            pair = compare(cobra["per_user_ndcg@10"], main[name]["per_user_ndcg@10"])
            quoted = f"{label}{pair['diff']:+.{digits[name]}f}, ".replace("-0", "−0")
            assert quoted in text and f"p = {pair['p_wilcoxon']:.2f})" in text.split(quoted)[1][:30], quoted

    # the figures quoted for COBRA stopped on its sparse ranking
    stopped = load_result("bench_quality_cobra_sparse")["models"]["cobra-cpu"]
    valid = [m["decodes"]["sparse"]["valid_ndcg@10_mean"] for m in (stopped, main["cobra-cpu"])]
    assert "NDCG@10 {:.4f} against {:.4f}".format(*valid) in text
    quotes_pairs(stopped, {"hstu-cpu": 4, "hstu-sid-cpu": 4})
    # ... and for it tuned on that ranking: the runs are at the point the second search chose
    tune_sparse, retuned = load_result("tune_cobra_sparse"), load_result("bench_quality_cobra_sparse_tuned")
    best = tune_sparse["models"]["cobra-cpu"]["best"]
    assert get_preset("cobra-cpu", retuned["overrides"]) == get_preset("cobra-cpu", {**tune_sparse["overrides"],
                                                                                       **best})
    assert f"validation picks learning rate {best['train.lr']:g}" in text
    cobra = retuned["models"]["cobra-cpu"]
    assert f"on validation (NDCG@10 {cobra['decodes']['sparse']['valid_ndcg@10_mean']:.4f})" in text
    assert f"give {cobra['ndcg@10_mean']:.4f} ± {cobra['ndcg@10_std']:.4f}: level with" in text
    quotes_pairs(cobra, {"hstu-cpu": 5, "hstu-sid-cpu": 4})
    # ... and for the ablations around that configuration
    around = load_result("ablate_cobra_sparse_valid")
    assert around["overrides"] == retuned["overrides"]
    assert around["best_on_valid_any_decode"] == {"variant": "sources", "decode": "sparse"}
    sparse = {name: v["valid_ndcg@10_by_decode"]["sparse"] for name, v in around["variants"].items()}
    for name, label in (("sources", "`sparse` (NDCG@10 "), ("SID 2 levels", "SID 2 levels ("),
                        ("+ ID embedding", "an ID embedding ("), ("in-batch negatives", "in-batch negatives ("),
                        ("lambda 0.5", "λ = 0.5 (")):
        assert f"{label}{sparse[name]:.4f})" in text, (name, sparse[name])
    runner_up = load_result("bench_quality_cobra_sparse_sid2")
    assert runner_up["overrides"] == {**around["overrides"], **around["variants"]["SID 2 levels"]["overrides"]}
    runner = runner_up["models"]["cobra-cpu"]
    valid = [m["decodes"]["sparse"]["valid_ndcg@10_mean"] for m in (runner, cobra)]
    assert "keep the choice: validation {:.4f} against {:.4f}".format(*valid) in text
    assert f"NDCG@10, {runner['ndcg@10_mean']:.4f} ± {runner['ndcg@10_std']:.4f}, is level" in text
    quotes_pairs(runner, {"hstu-cpu": 4, "hstu-sid-cpu": 4})
    for option, name in (("model.request_time=false", "no_request_time"), ("train.windows=last", "last_window")):
        variant = load_result(f"bench_quality_{name}")["models"]["hstu-cpu"]
        assert row(f"| `hstu-cpu --set {option}`").endswith(cells(variant))
    batch = load_result("bench_batch")
    for negatives, change in batch["change"].items():
        expected = " | ".join(f"{c['ndcg@10_mean']:.4f} ± {c['ndcg@10_std']:.4f}" for c in batch["cells"]
                              if c["negatives"] == negatives)
        assert row(f"| `{negatives}` |") == f"| `{negatives}` | {expected} | {change:+.1%} |"
    for p in load_result("bench_speed_h100")["presets"]:
        assert row(f"| `{p['preset']}` | {p['batch_size']} | {p['tokens_per_second']:,.0f} |").endswith(
            f"| {p['peak_memory_gb']:.2f} GB |")


GLUE_ROLE = re.compile(r"\{glue(?::\w+)?\}`([^`]+)`")


def _markdown(py: Path) -> list[str]:
    """The markdown cells of a chapter source."""
    import jupytext

    return [c.source for c in jupytext.read(py).cells if c.cell_type == "markdown"]


def _glued(nb_path: Path) -> dict[str, str]:
    """Glue key -> stored text/plain in the committed notebook."""
    from cobra.book import GLUE_PREFIX

    out = {}
    for cell in json.loads(nb_path.read_text())["cells"]:
        for o in cell.get("outputs", []):
            name = o.get("metadata", {}).get("scrapbook", {}).get("name")
            if name is not None:
                text = o["data"][GLUE_PREFIX + "text/plain"]
                out[name] = "".join(text) if isinstance(text, list) else text
    return out


@pytest.mark.parametrize("py", chapters(), ids=lambda p: p.name)
def test_every_glued_number_in_the_prose_is_in_the_outputs(py: Path):
    """Each {glue:text}`key:fmt` of the prose names a value the committed notebook stores, and fmt applies."""
    import ast

    glued = _glued(py.with_suffix(".ipynb"))
    for md in _markdown(py):
        for ref in GLUE_ROLE.findall(md):
            key, _, spec = ref.partition(":")
            assert key in glued, f"{py.name}: the prose quotes {key!r}, which no cell glues"
            if spec:
                value = ast.literal_eval(glued[key])
                format(int(value) if spec[-1] in "bcdoxX" else value, spec)


# A result typed by hand looks like 0.0813, 4.4%, 3.8 s or 1.41x: a number with decimals. Settings such as a
# temperature are written as code or math ($\tau = 0.05$); papers' numbers stand next to their {cite}.
TYPED_RESULT = re.compile(r"(?<![\w.-])\d+\.\d+")  # not in names such as Qwen3-Embedding-0.6B
QUOTED = re.compile(r"\{glue(?::\w+)?\}`[^`]*`|`[^`]*`|\$\$.*?\$\$|\$[^$]*\$|\([^()]*\)=|\[[^\]]*\]\([^)]*\)",
                    re.DOTALL)


@pytest.mark.parametrize("py", chapters(), ids=lambda p: p.name)
def test_no_result_number_is_typed_by_hand(py: Path):
    typed = []
    for md in _markdown(py):
        previous = ""
        for paragraph in re.split(r"\n\s*\n", md):
            # a paper's numbers stand in (or in a table right after) a paragraph with its {cite}; run times are
            # checked by the nbval run
            if "{cite" not in paragraph + previous and not paragraph.startswith("**Run time.**"):
                typed += TYPED_RESULT.findall(QUOTED.sub(" ", paragraph))
            previous = paragraph
    assert not typed, f"{py.name}: numbers typed into the prose {typed}: glue them (cobra.book.glue) or quote a paper"


# Every chapter has the same skeleton: what you will learn, what to read first, how long it runs, then the
# chapter, its summary and its exercises.
SKELETON = ("**Goal.**", "**Prerequisites.**", "**Run time.**", "## Summary", "## Exercises")


@pytest.mark.parametrize("py", chapters(), ids=lambda p: p.name)
def test_every_chapter_has_the_same_skeleton(py: Path):
    text = "\n".join(_markdown(py))
    where = [text.find(part) for part in SKELETON]
    missing = [part for part, i in zip(SKELETON, where, strict=True) if i < 0]
    assert not missing, f"{py.name} lacks {missing}"
    assert where == sorted(where), f"{py.name}: the parts must come in the order {SKELETON}"
    prerequisites = text[where[1]:where[2]]
    assert "{doc}" in prerequisites or py.name.startswith("00_"), f"{py.name}: link the prerequisites"


PLAIN_CHAPTER = re.compile(r"(?<!\{doc\}`)[Cc]hapters? \d\d")


@pytest.mark.parametrize("py", chapters(), ids=lambda p: p.name)
def test_chapters_refer_to_each_other_by_links(py: Path):
    """'chapter NN' in the prose is always a {doc} link, so the HTML can follow it."""
    plain = [m.group(0) for md in _markdown(py) for m in PLAIN_CHAPTER.finditer(md)]
    assert not plain, f"{py.name}: {plain} in plain text: write {{doc}}`chapter NN <NN_slug>`"
