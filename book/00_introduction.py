# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 0. Introduction
#
# **Goal.** Say what this book builds, how its chapters and its `cobra` package
# fit together, and how to run every chapter on a laptop CPU or on one 24 GB GPU.
#
# **Prerequisites.** none: this chapter sets up the book and its package.
#
# **Run time.** About 3 s on 2 CPU cores (`cpu` profile; measured by the nbval run, which checks it).
#
# ## What the book is about
#
# A recommender sees what a user did, in order, and predicts what comes next.
# Classic sequential models such as SASRec {cite}`kang2018sasrec` and HSTU
# {cite}`zhai2024hstu` predict the next *item ID*: an arbitrary integer with a
# learned vector. They are strong on collaborative signal and weak on items they
# have seen little of.
#
# *Generative retrieval* replaces the arbitrary ID by a **semantic ID**: embed
# each item's text with a language model, quantise the vector with residual
# k-means into a short tuple of codes `(c1, c2, c3)`, and let the model generate
# that tuple code by code, as TIGER {cite}`rajput2023tiger` does. Similar items
# share prefixes, so what the model learns about one film transfers to its
# neighbours. Quantisation loses detail, so COBRA {cite}`yang2025cobra`
# generates *both* a sparse semantic ID and a dense vector, and ranks items by
# combining the two.
#
# The chapters walk this path one step at a time, on MovieLens
# {cite}`harper2015movielens`:
#
# | chapter | what it builds | package module |
# |---|---|---|
# | {doc}`01 <01_data>` | MovieLens as sequences, the split, the evaluator, two baselines | `cobra.movielens`, `cobra.data`, `cobra.metrics` |
# | {doc}`02 <02_item_embeddings>` | item texts and their embeddings | `cobra.text` |
# | {doc}`03 <03_semantic_ids>`–{doc}`04 <04_sid_diagnostics>` | semantic IDs with (balanced) residual k-means, and their diagnostics | `cobra.sid`, `cobra.sid_metrics` |
# | {doc}`05 <05_hstu>`–{doc}`06 <06_prefixn>` | HSTU against SASRec; PrefixN embeddings | `cobra.hstu`, `cobra.sasrec`, `cobra.embeddings` |
# | {doc}`07 <07_tiger>` | TIGER: a film's semantic ID generated code by code, the trie and constrained beam search | `cobra.tiger`, `cobra.trie` |
# | {doc}`08 <08_interleaving>`–{doc}`10 <10_decoding>` | COBRA: interleaving, the dual loss, decoding | `cobra.interleave`, `cobra.cobra_model`, `cobra.losses`, `cobra.decode` |
# | {doc}`11 <11_experiments>` | five recommenders under one protocol: tuning, seeds, significance, ablations | `cobra.bench`, `cobra.stats` |
# | {doc}`12 <12_full_scale>` | appendix: the book at full scale on one 24 GB GPU | `cobra.bench.scale` |
#
# The {doc}`notation and glossary <notation>` page after the last chapter gives
# every symbol of the book one meaning and defines the terms the chapters use,
# each with a link to the chapter that explains it.
#
# ## The package and the chapters
#
# Nothing important lives only in a notebook. Every chapter imports `cobra`,
# and when a chapter builds something from scratch to teach it, it ends by
# checking that its result equals the package's. Each module's docstring names
# the chapter that explains it.

# %% [markdown]
# ## Setup
#
# Every chapter starts with the same cell. `cobra.book.setup` picks the
# *profile*, seeds every random number generator and turns progress bars off
# (they would make the saved outputs differ from run to run).

# %%
import textwrap

import pandas as pd

import cobra
from cobra.book import setup
from cobra.config import PROFILES
from cobra.exercises import check

profile = setup()
print(f"cobra {cobra.__version__}, profile: {profile.name}")

# %% [markdown]
# ## Two profiles, one code path
#
# A profile names a scale. The `cpu` profile is the default: MovieLens-100K and
# small models, so every chapter runs in a few minutes on two CPU cores. Its
# outputs are the ones saved in the notebooks and checked on every change. The
# `4090d` profile runs the same code on MovieLens-20M at the papers' sizes on a
# single 24 GB GPU.

# %%
pd.DataFrame([vars(p) for p in PROFILES.values()]).set_index("name")

# %% [markdown]
# You never edit a chapter to change the profile. Set an environment variable
# before starting Jupyter, or pass a flag to the command line:
#
# ```bash
# COBRA_PROFILE=4090d jupyter lab book/        # chapters at full scale
# python -m cobra data --profile 4090d --json  # the same for one command
# ```
#
# ## Running the book
#
# From a fresh clone, two commands do everything (the README says how long they
# take):
#
# ```bash
# make book   # set up .venv, fetch MovieLens-100K, validate the chapters, render _build/html
# make test   # unit tests, notebook validation, the pairing check and the book build
# ```
#
# MovieLens-100K needs no internet beyond the Python package index: when the
# GroupLens site cannot be reached, the data is read from inside a wheel that
# PyPI serves. Larger MovieLens variants are downloaded from GroupLens and
# checked against pinned checksums.
#
# On a GPU, create the conda environment in `environment.yml` (CUDA build of
# PyTorch), then run chapters or commands with `COBRA_PROFILE=4090d`.
#
# ## Summary
#
# - Generative retrieval names items by semantic IDs built from their text and
#   generates those IDs; COBRA adds a dense vector to recover what
#   quantisation loses.
# - The `cobra` package holds all the code; chapters explain it and import it.
# - Profiles change the scale, never the code: `cpu` by default, `4090d` for
#   the full MovieLens-20M runs.
#
# ## Exercises
#
# Solutions are folded below each exercise (click to open); try first. Those
# with one right answer end with `check("00.k", your_answer)`.
#
# ```{exercise}
# :label: ex-00-1
#
# Run `python -m cobra --help` and list the commands. Which chapters does
# each belong to? *A few seconds.* Check the list, sorted, with
# `check("00.1", commands)`; the solution reads it from `cobra.cli`.
# ```

# %% [markdown] tags=["solution"]
# ````{solution-start} ex-00-1
# :class: dropdown
# ````

# %% tags=["solution"]
from cobra.cli import COMMANDS

commands = tuple(sorted(COMMANDS))
for name in commands:
    print(f"{name:<10} {COMMANDS[name][0]}")
check("00.1", commands)

# %% [markdown] tags=["solution"]
# `data` and `eval` belong to {doc}`chapter 01 <01_data>`, `embed` to
# {doc}`chapter 02 <02_item_embeddings>`, `sid` to {doc}`chapters 03 and 04
# <03_semantic_ids>`, `train` and `presets` to {doc}`chapter 05 <05_hstu>`
# onwards, `import` to {ref}`own-data` in {doc}`chapter 01 <01_data>`, and
# `bench` to the chapters that quote a benchmark ({doc}`04 <04_sid_diagnostics>`,
# {doc}`05 <05_hstu>`, {doc}`09 <09_dual_loss>`, {doc}`11 <11_experiments>`).
#
# ````{solution-end}
# ````

# %% [markdown]
# ```{exercise}
# :label: ex-00-2
#
# Set `COBRA_PROFILE=4090d` in a terminal and run `python -c "from cobra.config
# import get_profile; print(get_profile())"`. What changes, and what stays?
# *A few seconds.* Check how many of the profile's settings change with
# `check("00.2", n_changed)`.
# ```

# %% [markdown] tags=["solution"]
# ````{solution-start} ex-00-2
# :class: dropdown
# ````

# %% tags=["solution"]
profiles = pd.DataFrame({name: vars(p) for name, p in PROFILES.items()})
changed = profiles[profiles["cpu"] != profiles["4090d"]]
n_changed = len(changed)
print(changed.to_string())
check("00.2", n_changed)

# %% [markdown] tags=["solution"]
# The scale changes (data set, encoder, sequence length, semantic-ID
# codebooks, device); the code and the chapters do not.
#
# ````{solution-end}
# ````

# %% [markdown]
# ```{exercise}
# :label: ex-00-3
#
# Try `COBRA_PROFILE=tpu`: what does the error message tell you to do? *A
# second.* An open question: the solution prints the message.
# ```

# %% [markdown] tags=["solution"]
# ````{solution-start} ex-00-3
# :class: dropdown
# ````

# %% tags=["solution"]
from cobra.config import ConfigError, get_profile

try:
    get_profile("tpu")
except ConfigError as err:
    print(textwrap.fill(str(err), 88))

# %% [markdown] tags=["solution"]
# ````{solution-end}
# ````
