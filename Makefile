# Entry points. Set-up is part of each target and idempotent: the virtual
# environment is (re)installed only when pyproject.toml changes.
#
#   make book   set up, fetch MovieLens-100K, validate every chapter (nbval,
#               cpu profile) and render the HTML book into _build/html
#   make test   set up and run the whole test suite: unit tests, every chapter
#               at the 4090d profile on a tiny synthetic stand-in (CPU), nbval
#               over every chapter, the jupytext pairing check, the book build;
#               then nbval over every chapter again as on another reader's
#               CPU (PERTURBED: generic ATen kernels, SSE-level MKL and
#               oneDNN, one thread)
#
# Other targets: make notebooks (re-execute the chapters and rewrite the
# .ipynb pairs), make lint, make clean.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# The CPU build of torch; GPU users take environment.yml instead (README).
TORCH  ?= torch==2.13.0
STAMP  := $(VENV)/.installed
NBVAL  := --nbval --nbval-sanitize-with book/nbval_sanitize.cfg --nbval-current-env --nbval-cell-timeout 900
# Another reader's machine, simulated: other float kernels and another thread count. Outputs are
# compared with cobra.nbcompare's tolerance, so they must validate under both. On AMD CPUs MKL
# ignores MKL_ENABLE_INSTRUCTIONS (same sums either way); MKL_CBWR=COMPATIBLE does change its kernels.
# The same settings are cobra.nbval_plugin.PERTURBED (tests/test_nbval_plugin.py keeps them equal).
PERTURBED := ATEN_CPU_CAPABILITY=default MKL_ENABLE_INSTRUCTIONS=SSE4_2 MKL_CBWR=COMPATIBLE \
             ONEDNN_MAX_CPU_ISA=SSE41 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1

export COBRA_PROFILE ?= cpu
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false
export PYDEVD_DISABLE_FILE_VALIDATION ?= 1

.PHONY: setup data book test notebooks student lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@echo "==> setting up $(VENV) (torch: $(TORCH))"
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	@touch $(STAMP)

data: setup
	@echo "==> MovieLens-100K (offline-capable) and its item vectors"
	$(PY) -m cobra data --dataset ml-100k
	$(PY) -m cobra embed --dataset ml-100k --encoder minilm

# The book is rendered even when a chapter fails validation (the HTML shows the committed outputs);
# the target still fails then, after saying which cells differ (README: "When a chapter fails").
book: data
	@echo "==> validating the chapters on the cpu profile (nbval)"
	$(PY) -m pytest -q -p no:cacheprovider $(NBVAL) book; status=$$?; \
	echo "==> rendering the book from the committed outputs"; \
	$(VENV)/bin/jupyter-book build . --warningiserror --keep-going --quiet || exit 1; \
	echo "==> done: open _build/html/index.html"; \
	if [ $$status -ne 0 ]; then echo "==> but chapter validation failed (see above and the README)"; fi; \
	exit $$status

test: data
	@echo "==> unit tests, notebook validation, pairing check, book build"
	$(PY) -m pytest $(NBVAL) tests book
	@echo "==> the chapters again, as on another reader's CPU: $(PERTURBED)"
	env $(PERTURBED) $(PY) -m pytest -q -p no:cacheprovider $(NBVAL) book

notebooks: data
	@echo "==> re-executing the chapters and writing their .ipynb pairs"
	$(PY) -m cobra.book
	$(PY) -m cobra.book --student

student: setup
	@echo "==> student editions (solutions left out) in student/"
	$(PY) -m cobra.book --student

lint: setup
	$(VENV)/bin/ruff check cobra tests book/*.py

clean:
	rm -rf _build .pytest_cache
