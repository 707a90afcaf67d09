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
# # 8. Interleaving sparse and dense tokens
#
# **Goal.** Build the input of COBRA {cite}`yang2025cobra`: every film of a
# history becomes *two* tokens, its semantic ID (the sparse token, `SID`) and
# its dense vector (the `VID`), laid out as
# `[SID_1, VID_1, SID_2, VID_2, ...]`. We follow one small batch through every
# step: stacking and flattening `(B, T, 2, D) -> (B, 2T, D)`, the type
# embedding, what the hidden state at each token predicts, the causal mask
# (and why `VID_t` may look at `SID_t` but `SID_t` may not look at `VID_t`),
# the timestamps cloned per pair and the time gaps HSTU's bias sees. We end by
# building the mask, the targets and the times from scratch in a few lines and
# checking them against the package.
#
# **Prerequisites.** {doc}`chapter 02 <02_item_embeddings>` (the item
# vectors), {doc}`chapter 05 <05_hstu>` (HSTU and its time bias) and
# {doc}`chapter 06 <06_prefixn>` (PrefixN).
#
# **Run time.** About 3 s on 2 CPU cores (`cpu` profile; measured by the nbval run, which checks it).
#
# The code lives in `cobra.interleave` (`interleave_pairs`, `interleaved_mask`,
# `clone_timestamps`, `interleaved_query_timestamps`, `interleave_targets`, the
# `Interleaver` module and the plotting helpers `mask_for_plot`,
# `time_gap_matrix`, `token_labels`); the model that uses it is
# `cobra.cobra_model.CobraRecommender`.

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.colors import ListedColormap

from cobra.book import glue, setup
from cobra.cobra_model import CobraConfig, CobraRecommender
from cobra.datasets import load_dataset
from cobra.exercises import check
from cobra.hstu import time_bucket
from cobra.inputs import semantic_ids
from cobra.interleave import (
    SID_TYPE,
    VID_TYPE,
    clone_timestamps,
    interleave_pairs,
    interleave_targets,
    interleaved_mask,
    interleaved_query_timestamps,
    mask_for_plot,
    time_gap_matrix,
    token_labels,
    token_types,
)
from cobra.sid import SIDConfig
from cobra.text import display_title, embed_items

profile = setup()
print(f"profile {profile.name}: {profile.dataset}, encoder {profile.encoder}, "
      f"SIDs {profile.sid_levels} levels x {profile.sid_codes} codes "
      "+ a uniqueness code")

# %% [markdown]
# ## Two tokens per film
#
# COBRA keeps both views of an item that the earlier chapters built:
#
# - the **SID** ({doc}`chapter 03 <03_semantic_ids>`): a tuple of codes
#   `(c1, c2, c3, u)`; its token is the PrefixN embedding of
#   {doc}`chapter 06 <06_prefixn>`, the sum of learned vectors of the
#   prefixes `(c1)`, `(c1, c2)`, `(c1, c2, c3)`, `(c1, c2, c3, u)`;
# - the **VID** ({doc}`chapter 02 <02_item_embeddings>`): the film's frozen
#   text vector ($D_\text{text} =$ {glue:text}`text_dim:d` dimensions for
#   MiniLM), passed through a learned linear projection to the model width `D`.
#
# The semantic IDs and text vectors come from the caches of chapters
# {doc}`02 <02_item_embeddings>` and {doc}`03 <03_semantic_ids>`. A
# fresh (untrained) `CobraRecommender` owns both towers; its weights do not
# matter in this chapter, only the shapes and the wiring.

# %%
ml = load_dataset(profile.dataset)
titles = [display_title(t, y)
          for t, y in zip(ml.items["title"], ml.items["year"], strict=True)]
# balanced, as in the semantic-ID and PrefixN chapters
sid_config = SIDConfig(levels=profile.sid_levels, codes=profile.sid_codes)
# (N, L + 1) int64, cached
codes = semantic_ids(profile.dataset, profile.encoder, sid_config)
# (N, 384) float32
text = embed_items(profile.dataset, profile.encoder, progress=False).vectors
model = CobraRecommender(
    CobraConfig(num_items=ml.num_items, dim=64, max_seq_len=profile.max_seq_len),
    codes, text).eval()
print(f"codes {codes.shape}, text vectors {text.shape}, "
      f"model dim D = {model.config.dim}")
text_dim = glue("text_dim", text.shape[1])

# %% [markdown]
# Our running example is a hand-made history of four well-known films, rated a
# minute, an hour and a day apart (items are numbered from 1; 0 is padding,
# so item `i` is row `i - 1` of the code and vector tables). Note how the two
# *Star Wars* films share the SID prefix {glue:text}`star_wars_prefix`:

# %%
items = torch.tensor([[1, 50, 181, 100]])  # (B, T) = (1, 4): a hand-picked history
# (B, T) seconds: a minute, an hour, a day apart
timestamps = torch.tensor([[0, 60, 3_660, 90_060]])
lengths = torch.tensor([4])
# first two codes of each
star_wars = [tuple(int(c) for c in codes[i - 1][:2]) for i in items[0, 1:3]]
# on MovieLens-100K items 50 and 181 are Star Wars and Return of the Jedi
if star_wars[0] != star_wars[1]:
    print(f"on {profile.dataset}, items 50 and 181 do not share a prefix")
glue("star_wars_prefix", str(star_wars[0]))
pd.DataFrame({"item": items[0].numpy(), "title": [titles[i - 1] for i in items[0]],
              "SID codes": [tuple(int(c) for c in codes[i - 1]) for i in items[0]],
              "time (s)": timestamps[0].numpy()},
             index=[f"t = {t + 1}" for t in range(4)])

# %% [markdown]
# The two towers give one `D`-vector per film each:

# %%
sid = model.sid_tower(items)  # (B, T, D)
vid = model.vid_tower(items)  # (B, T, D)
print("SID tokens", tuple(sid.shape), " VID tokens", tuple(vid.shape))

# %% [markdown]
# ## Stack, then flatten
#
# Interleaving is a stack along a new axis of size 2 followed by a reshape
# that merges it with the time axis, as in the source article
# {cite}`sid2vid2026blog`: `(B, T, 2, D) -> (B, 2T, D)` in our letters. Because
# the pair axis is the faster-moving one after the merge, token `2t` is the SID
# of item `t` and token `2t + 1` its VID:

# %%
pairs = torch.stack([sid, vid], dim=2)  # (B, T, 2, D)
tokens = pairs.reshape(1, 2 * 4, -1)  # (B, 2T, D)
print("stacked", tuple(pairs.shape), "-> interleaved", tuple(tokens.shape))
assert torch.equal(tokens[:, 0::2], sid) and torch.equal(tokens[:, 1::2], vid)
assert torch.equal(tokens, interleave_pairs(sid, vid))
print("token 2t is SID_t, token 2t+1 is VID_t; "
      "equal to cobra.interleave.interleave_pairs")

# %% [markdown]
# The same function interleaves anything with a `(B, T)` leading shape: item
# ids, timestamps, targets. The backbone cannot tell from a token's vector
# alone which tower it came from (the two towers are unrelated linear maps into
# the same space), so each token also gets a learned **type embedding**, row 0
# for SIDs and row 1 for VIDs, added to it; its position is simply the token
# index `0 .. 2T-1`, which HSTU's relative position bias reads.

# %%
T = items.shape[1]
types = token_types(T)  # (2T,)
table = pd.DataFrame({
    "kind": token_labels(T),
    "type id": types.numpy(),
    "position": np.arange(2 * T),
    "item": interleave_pairs(items, items)[0].numpy(),
    "time (s)": clone_timestamps(timestamps)[0].numpy(),
})
table.set_index("kind").T

# %% [markdown]
# `Interleaver`, the module `CobraRecommender` uses, does all of this at once
# (and zeroes padding tokens): its tokens are the interleaved vectors plus the
# type embedding.

# %%
inter = model.interleaver(sid, vid, timestamps, lengths)
expected = interleave_pairs(sid, vid) + model.interleaver.type_embedding(types)
assert torch.allclose(inter.tokens, expected)
assert (SID_TYPE, VID_TYPE) == (0, 1)
for field in ("tokens", "types", "positions", "timestamps", "query_timestamps",
              "lengths", "mask"):
    print(f"{field:<16}", tuple(getattr(inter, field).shape))

# %% [markdown]
# ## What each token predicts
#
# Generation in COBRA is a cascade, coarse then fine: first the sparse ID of
# the next film (which region of the catalogue), then, *given* that ID, the
# dense vector that pins down the film. Write
# $\mathcal{S}_{\le t} = [\mathrm{SID}_1, \mathrm{VID}_1, \dots, \mathrm{SID}_t, \mathrm{VID}_t]$
# for the interleaved sequence of the first $t$ films. COBRA factorises the
# next film's pair of tokens as
#
# $$
# P(\mathrm{SID}_{t+1}, \mathrm{VID}_{t+1} \mid \mathcal{S}_{\le t})
# = P(\mathrm{SID}_{t+1} \mid \mathcal{S}_{\le t})
# \cdot P(\mathrm{VID}_{t+1} \mid \mathcal{S}_{\le t}, \mathrm{SID}_{t+1}).
# $$ (eq-cobra-cascade)
#
# In the interleaved sequence that means two kinds of prediction, alternating:
#
# - the hidden state at **`VID_t`** has read the whole pair `t`; it predicts
#   the SID of the **next** film, `SID_{t+1}` (the first factor of
#   {eq}`eq-cobra-cascade`, trained by the *SID loss*);
# - the hidden state at **`SID_t`** has read everything before film `t` plus
#   film `t`'s SID; it predicts the VID of the **same** film, `VID_t`
#   (the second factor of {eq}`eq-cobra-cascade`, written for film `t`,
#   trained by the *VID loss*).
#
# `interleave_targets` writes the target item of every token and two boolean
# masks saying which loss each token carries. Here is the hand-worked example
# with `T = 3` films `a = 1`, `b = 50`, `c = 181` and the film after them,
# `d = 100`, known from the data (`next_ids`):

# %%
a, b, c, d = 1, 50, 181, 100
targets, sid_loss, vid_loss = interleave_targets(torch.tensor([[a, b, c]]),
                                                 torch.tensor([3]),
                                                 next_ids=torch.tensor([[b, c, d]]))
name = {a: "a", b: "b", c: "c", d: "d", 0: "-"}
worked = pd.DataFrame({
    "token": token_labels(3),
    "input": ["SID(a)", "VID(a)", "SID(b)", "VID(b)", "SID(c)", "VID(c)"],
    "target item": [name[int(i)] for i in targets[0]],
    "predicts": [f"{'VID' if s else 'SID'}({name[int(i)]})"
                 for i, s in zip(targets[0], vid_loss[0], strict=True)],
    "SID loss": sid_loss[0].numpy(),
    "VID loss": vid_loss[0].numpy(),
}).set_index("token")
worked

# %% [markdown]
# By hand: `SID(a)` must produce `VID(a)`, `VID(a)` must produce `SID(b)`,
# and so on; the last token `VID(c)` produces `SID(d)`. Each film of the
# history is the target of exactly one SID loss (except the first, which
# nothing precedes) and one VID loss.

# %%
assert targets[0].tolist() == [a, b, b, c, c, d]
assert sid_loss[0].tolist() == [False, True, False, True, False, True]
assert vid_loss[0].tolist() == [True, False, True, False, True, False]
print("targets and loss masks match the hand-worked table")

# %% [markdown]
# **How the model trains on it.** At serving time the model reads a history,
# predicts the next SID at the last `VID` token, *appends* that SID as a new
# token and reads the VID query off the hidden state there
# ({doc}`chapter 10 <10_decoding>`). The
# sequence then ends on an *open* SID whose VID is what we want. Training
# mirrors this: `CobraRecommender.training_loss` appends the window's next
# film `d` as an open `SID(d)` token with no VID after it
# (`drop_last_vid=True`), so the last prediction in training is exactly the
# one decoding makes:

# %%
targets4, sid_loss4, vid_loss4 = interleave_targets(torch.tensor([[a, b, c, d]]),
                                                    torch.tensor([4]),
                                                    drop_last_vid=True)
print("tokens:  ", token_labels(4)[:7], "+ one padding slot")
print("targets: ", [name[int(i)] for i in targets4[0]])
print("SID loss:", sid_loss4[0].int().tolist())
print("VID loss:", vid_loss4[0].int().tolist())

# %% [markdown]
# ## The causal mask
#
# Which tokens may each token attend to? COBRA uses plain causal attention over
# the interleaved order: token `i` sees every token `j <= i`. The source
# article builds HSTU's usual upper-triangular mask of *blocked* pairs,
# `triu(ones, diagonal=1)` {cite}`sid2vid2026blog`; `cobra.interleave` stores
# its complement (True = may attend). Three cells of every pair are worth a
# look, coloured in the heatmap below:
#
# - **`VID_t` sees `SID_t`** (green). The VID is generated *given* the SID: the
#   coarse code is the context for the fine vector. Nothing leaks, because
#   `VID_t`'s target is `SID_{t+1}`, the *next* film.
# - **`SID_t` does not see `VID_t`** (red). `VID_t` is exactly what the hidden
#   state at `SID_t` must predict; seeing it would be copying the answer.
# - **`SID_{t+1}` sees `VID_t`**: the previous film is fully known.
#
# (Each token also sees itself, as in any causal Transformer: the input at
# `SID_t` is `SID_t`, not its target.)

# %%
T = 4
mask = mask_for_plot(T)  # (2T, 2T) bool, row = query token, column = key token
labels = token_labels(T)
kind = mask.int().numpy().copy()  # 0 blocked, 1 allowed
for t in range(T):
    kind[2 * t + 1, 2 * t] = 2  # VID_t -> SID_t: allowed, same film
    kind[2 * t, 2 * t + 1] = 3  # SID_t -> VID_t: blocked, it is the answer
cmap = ListedColormap(["#f2f2f2", "#6b8fc7", "#3a9a5b", "#d1495b"])
fig, ax = plt.subplots(figsize=(5.2, 4.6))
ax.imshow(kind, cmap=cmap, vmin=-0.5, vmax=3.5)
ax.set_xticks(range(2 * T), labels)
ax.set_yticks(range(2 * T), labels)
ax.set_xticks(np.arange(-0.5, 2 * T), minor=True)
ax.set_yticks(np.arange(-0.5, 2 * T), minor=True)
ax.grid(which="minor", color="white", lw=1.5)
ax.grid(which="major", visible=False)
ax.tick_params(which="minor", length=0)
ax.set(xlabel="key token (attended to)", ylabel="query token (attending)",
       title="Interleaved causal mask")
handles = [plt.Rectangle((0, 0), 1, 1, color=cmap(i)) for i in range(4)]
ax.legend(handles,
          ["blocked", "allowed", "VID_t sees SID_t", "SID_t may not see VID_t"],
          loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
plt.show()

# %% [markdown]
# A tempting alternative is an *item-level* causal mask, where both tokens of
# a pair share one step and see each other. It would let `SID_t` read
# `VID_t`, its own target: the VID loss would drop to nearly zero by copying
# and the model would learn nothing about predicting dense vectors. The
# token-level mask forbids exactly the red cells.
#
# We can check the wiring end to end, through the whole HSTU stack: change the
# VID of film 2 (token 3) and see which hidden states move. Only tokens at and
# after `VID_2` may change; in particular the hidden state at `SID_2`, which
# predicts `VID_2`, must not.

# %%
with torch.no_grad():
    hidden, _ = model.encode_tokens(sid, vid, timestamps, lengths)  # (B, 2T, D)
    vid_changed = vid.clone()
    vid_changed[:, 1] = torch.randn(vid.shape[-1],
                                    generator=torch.Generator().manual_seed(0))
    hidden_changed, _ = model.encode_tokens(sid, vid_changed, timestamps, lengths)
moved = (hidden_changed - hidden).abs().amax(dim=-1)[0]  # (2T,)
changed = dict(zip(labels, [bool(m > 1e-6) for m in moved], strict=True))
print("unchanged:", ", ".join(t for t, c in changed.items() if not c))
print("moved:    ", ", ".join(t for t, c in changed.items() if c))
assert not bool((moved[:3] > 1e-6).any()) and bool((moved[3:] > 1e-6).all())

# %% [markdown]
# ## Cloned timestamps and the time bias
#
# HSTU adds to every attention score a learned bias that depends on the time
# gap between the query and the key ({doc}`chapter 05 <05_hstu>`), bucketed on
# a log scale. With two tokens per film, which time does each token carry?
# Both tokens of a pair describe the same event, so COBRA-on-HSTU **clones** the
# film's timestamp onto both (`clone_timestamps`, the source article's
# `interleaved_ts` {cite}`sid2vid2026blog`):

# %%
print("item times ", timestamps[0].tolist())
print("token times", clone_timestamps(timestamps)[0].tolist())

# %% [markdown]
# Recall from {doc}`chapter 05 <05_hstu>` that the bias at query `i` and key
# `j` uses `query_time[i] - time[j]`, where the query time is the time of *what
# position `i` predicts*. In the interleaved sequence that is the time of the next
# token:
#
# - at `SID_t` (predicts `VID_t`, the same film): `ts_t`, so the gap to its own
#   `SID_t` key is **zero**. The zero bucket tells the model "this key is the
#   twin of what you are generating now", which is how it can tell the pair
#   apart from the history even though the mask is a plain triangle;
# - at `VID_t` (predicts `SID_{t+1}`): `ts_{t+1}`, the time of the next event,
#   as in plain HSTU; the last token uses the request time when the batch
#   carries it (`query_time`, {doc}`chapter 05 <05_hstu>`), else its own time,
#   as here.

# %%
query_times = interleaved_query_timestamps(timestamps, lengths)  # (B, 2T)
pd.DataFrame({"token time": clone_timestamps(timestamps)[0].numpy(),
              "query time": query_times[0].numpy()}, index=labels).T

# %% [markdown]
# `time_gap_matrix` gives every `query_time[i] - time[j]`; HSTU buckets them
# with `time_bucket` (bucket $\lfloor \ln \max(\Delta t, 1) / 0.301 \rfloor$).
# The heatmap shows the buckets the bias actually looks up (blocked cells
# greyed out), with the gap written in each cell (in seconds, or in days
# when it is longer than that).

# %%
gaps = time_gap_matrix(timestamps[0])  # (2T, 2T) int64 seconds
buckets = time_bucket(gaps).numpy().astype(float)  # (2T, 2T)
shown = np.where(mask.numpy(), buckets, np.nan)
fig, ax = plt.subplots(figsize=(6.2, 4.8))
im = ax.imshow(shown, cmap="viridis", vmin=0, vmax=np.nanmax(shown))
ax.imshow(np.where(mask.numpy(), np.nan, 1.0), cmap=ListedColormap(["#e6e6e6"]))
for i in range(2 * T):
    for j in range(i + 1):
        g = int(gaps[i, j])
        ax.text(j, i, f"{g:,}" if g < 10_000 else f"{g / 86400:.2f}d", ha="center",
                va="center", fontsize=7,
                color="white" if buckets[i, j] < 20 else "black")
ax.set_xticks(range(2 * T), labels)
ax.set_yticks(range(2 * T), labels)
ax.grid(False)
ax.set(xlabel="key token", ylabel="query token",
       title="Time gaps seen by HSTU's bias (colour: bucket)")
fig.colorbar(im, ax=ax, label="time bucket")
plt.show()

# %% [markdown]
# Three things to read off the picture:
#
# - the **zero gap inside a pair**: the `(SID_t, SID_t)` cells on the diagonal
#   are 0 s (bucket 0), whatever the film's time;
# - the rows of `VID_t` and `SID_{t+1}` carry the *same* gaps (both predict
#   something at time `ts_{t+1}`); what tells the two rows apart is the type
#   embedding, the position bias and, above all, what they may see (the
#   `SID_{t+1}` key);
# - each film's two key columns are equal (cloned times): the time bias never
#   prefers the SID or the VID of the same past film; the type embedding and
#   the content do.

# %% [markdown]
# ## From scratch, and checked
#
# Everything above fits in a few lines of plain torch: the mask is "key index
# `<=` query index", the token times repeat each item time twice, the query
# time is the next token's time (the last token's own), and the targets put the
# same film at `SID_t` and the next film at `VID_t`.

# %%
def my_mask(T):
    i = torch.arange(2 * T)
    return (i[None, :] <= i[:, None]).unsqueeze(0)  # (1, 2T, 2T), True = may attend


def my_times(ts):
    tok = ts.repeat_interleave(2, dim=1)  # (B, 2T) each item time twice
    # the next token's time; the last keeps its own
    query = torch.cat([tok[:, 1:], tok[:, -1:]], dim=1)
    return tok, query


def my_targets(items, next_items):
    # (B, 2T): x_t, then x_{t+1}
    return torch.stack([items, next_items], dim=2).reshape(items.shape[0], -1)


for t in (1, 3, 4, 50):
    assert torch.equal(my_mask(t), interleaved_mask(t))
tok, query = my_times(timestamps)
assert torch.equal(tok, clone_timestamps(timestamps))
assert torch.equal(query, interleaved_query_timestamps(timestamps, lengths))
assert torch.equal(query.unsqueeze(2) - tok.unsqueeze(1),
                   time_gap_matrix(timestamps[0]).unsqueeze(0))
assert torch.equal(my_targets(torch.tensor([[a, b, c]]), torch.tensor([[b, c, d]])),
                   targets)
print("mask, cloned and query times, time gaps and targets equal cobra.interleave's")

# %% [markdown]
# (`my_times` is only right for full rows; the package version also handles
# right padding, where the last *real* token's time, or the request time,
# is the query time of the last token.)
#
# ## Summary
#
# - COBRA's input turns `T` films into `2T` tokens, `[SID_1, VID_1, ...]`:
#   stack the two towers' outputs to `(B, T, 2, D)` and reshape to
#   `(B, 2T, D)`; a type embedding (SID = 0, VID = 1) marks each token's kind.
# - COBRA's cascade {eq}`eq-cobra-cascade` generates the next film's SID, then
#   its VID given the SID. The hidden state at `SID_t` predicts `VID_t` (same
#   film, the VID loss); the hidden state at `VID_t` predicts `SID_{t+1}` (next
#   film, the SID loss).
#   Training appends the next film as an open SID, as decoding does.
# - A plain causal mask over the interleaved order is exactly right: `VID_t`
#   sees `SID_t` (the code it is conditioned on) and `SID_t` never sees `VID_t`
#   (its answer); an item-level mask would leak the target.
# - Timestamps are cloned per pair; with HSTU's "time of what you predict" rule
#   the query at `SID_t` sees a zero gap to its own SID, the twin of what it
#   generates.
#
# ## Exercises
#
# Each exercise says how long it takes on the `cpu` profile. Those with one
# right answer end with a check: `check("08.1", your_answer)` prints whether
# it is right, with a hint if not. Solutions are folded below each exercise
# (click to open); try first.
#
# ```{exercise}
# :label: ex-08-1
#
# Build the item-level mask (the two tokens of a film see each other, and
# everything of earlier films) and repeat the perturbation check: which
# hidden states move when `VID_2` changes? Which loss would this break?
# `encode_tokens` runs `inter = model.interleaver(sid, vid, timestamps,
# lengths)` and then `model.backbone(inter.tokens, inter.timestamps,
# inter.lengths, inter.mask, inter.query_timestamps)`; call these two
# yourself with your `(1, 2T, 2T)` mask in place of `inter.mask`. *About a
# second.* Check: `check("08.1", moved_tokens)` with the indices (0 to 7) of
# the tokens whose hidden state moves by more than `1e-6`, as a tuple.
# ```

# %% [markdown] tags=["solution"]
# ````{solution-start} ex-08-1
# :class: dropdown
# ````

# %% tags=["solution"]
pos = torch.arange(2 * T)
item_mask = (pos[None, :] // 2 <= pos[:, None] // 2).unsqueeze(0)  # (1, 2T, 2T)


def hidden_with(mask: torch.Tensor, vid_tokens: torch.Tensor) -> torch.Tensor:
    inter = model.interleaver(sid, vid_tokens, timestamps, lengths)
    return model.backbone(inter.tokens, inter.timestamps, inter.lengths, mask,
                          inter.query_timestamps)  # (B, 2T, D)


with torch.no_grad():
    moved_item = (hidden_with(item_mask, vid_changed)
                  - hidden_with(item_mask, vid)).abs().amax(dim=-1)[0]  # (2T,)
moved_tokens = tuple(int(i) for i in torch.nonzero(moved_item > 1e-6).flatten())
print("item-level mask, moved:", ", ".join(labels[i] for i in moved_tokens))
check("08.1", moved_tokens)

# %% [markdown] tags=["solution"]
# Now `SID_2` moves too: its hidden state reads `VID_2`, the very vector it
# is trained to predict. The VID loss at `SID_2` could be brought down by
# copying its input, and the model would learn nothing about predicting a
# film's dense vector from its code and the history.
#
# ````{solution-end}
# ````

# %% [markdown]
# ```{exercise}
# :label: ex-08-2
#
# Use `interleave_targets` on a right-padded batch of two rows, items
# `[a, b, c]` and `[d, 0, 0]`, with lengths 3 and 1 (no `next_ids`). Which
# tokens carry a loss in the second row? *About a second.* Check:
# `check("08.2", (n_sid_loss, n_vid_loss))`, the number of tokens of the
# second row that carry the SID loss and the VID loss.
# ```

# %% [markdown] tags=["solution"]
# ````{solution-start} ex-08-2
# :class: dropdown
# ````

# %% tags=["solution"]
padded_targets, padded_sid, padded_vid = interleave_targets(
    torch.tensor([[a, b, c], [d, 0, 0]]), torch.tensor([3, 1]))
pd.DataFrame({"target item": [name[int(i)] for i in padded_targets[1]],
              "SID loss": padded_sid[1].numpy(), "VID loss": padded_vid[1].numpy()},
             index=token_labels(3)).T

# %% tags=["solution"]
n_sid_loss, n_vid_loss = int(padded_sid[1].sum()), int(padded_vid[1].sum())
check("08.2", (n_sid_loss, n_vid_loss))

# %% [markdown] tags=["solution"]
# Only `SID_1` carries a loss (the VID loss: it predicts `VID(d)`). `VID_1`
# would predict the next film's SID, but a row of length 1 has no next film
# unless `next_ids` gives it, and padding tokens predict nothing.
#
# ````{solution-end}
# ````

# %% [markdown]
# ```{exercise}
# :label: ex-08-3
#
# Swap the order inside a pair to `[VID_t, SID_t]`. What would each position
# predict, and what would decoding have to generate first? Think it through
# first, with pen and paper. *About 5 minutes.* An open question: the
# solution prints the swapped layout.
# ```

# %% [markdown] tags=["solution"]
# ````{solution-start} ex-08-3
# :class: dropdown
# ````

# %% tags=["solution"]
swapped = [f"{kind}_{t + 1}" for t in range(3) for kind in ("VID", "SID")]
predicts = [f"SID_{t + 1}" if kind == "VID" else f"VID_{t + 2}"
            for t in range(3) for kind in ("VID", "SID")]
pd.DataFrame({"token": swapped, "predicts": predicts}).set_index("token").T

# %% [markdown] tags=["solution"]
# With a causal mask, the hidden state at `VID_t` would predict `SID_t` (the
# same film's code, given its dense vector) and the hidden state at `SID_t`
# would predict `VID_{t+1}`, the next film's dense vector, with no code to
# condition on. Decoding would have to generate the dense vector first and
# the code second: the cascade {eq}`eq-cobra-cascade` turned around, fine
# before coarse. The hard step, picking a film out of the whole catalogue,
# would fall on the dense vector alone, and the code, predicted from an
# already chosen vector, would add almost nothing.
#
# ````{solution-end}
# ````

# %% [markdown]
# ```{exercise}
# :label: ex-08-4
#
# Replace the cloned times by `ts_t` for `SID_t` and `ts_t + 1` second for
# `VID_t` (keep the rule that a token's query time is the next token's time,
# the last token's its own, as in `my_times`). Which buckets of the time-gap
# heatmap change, and by how much? Then do the same for a real history: the
# first 10 ratings of user 1,
# `ml.interactions.query("user == 1")["timestamp"].to_numpy()[:10]` (the
# interactions are sorted by user, then time). *About a second.* Check:
# `check("08.4", n_changed)`, the number of cells that the mask allows
# whose bucket changes on user 1's history.
# ```

# %% [markdown] tags=["solution"]
# ````{solution-start} ex-08-4
# :class: dropdown
# ````

# %% tags=["solution"]
def changed_buckets(ts: torch.Tensor) -> torch.Tensor:
    """(2T, 2T) bucket change, new times minus cloned ones, on the allowed cells."""
    n = ts.shape[1]
    old = time_bucket(time_gap_matrix(ts[0]))  # (2T, 2T)
    tok_new = torch.stack([ts, ts + 1], dim=2).reshape(1, -1)  # (1, 2T): ts_t, ts_t + 1
    query_new = torch.cat([tok_new[:, 1:], tok_new[:, -1:]], dim=1)
    new = time_bucket(query_new[0][:, None] - tok_new[0][None, :])
    return (new - old) * interleaved_mask(n)[0]


example = changed_buckets(timestamps)
print(f"running example: {int((example != 0).sum())} buckets change")
user_ts = torch.tensor(ml.interactions.query("user == 1")["timestamp"].to_numpy()[:10])
user = changed_buckets(user_ts[None])
n_changed = int((user != 0).sum())
print(f"user 1, gaps {torch.diff(user_ts).tolist()} s:")
print(f"{n_changed} of {int(interleaved_mask(10).sum())} allowed buckets change, by "
      f"{sorted(user[user != 0].tolist())}")
check("08.4", n_changed)

# %% [markdown] tags=["solution"]
# On the running example nothing changes: its gaps are a minute or more, and
# the buckets are a factor of about $e^{0.301}$ wide, so one second is invisible,
# and a gap of 1 s falls in bucket 0 like a gap of 0. Real histories are
# different: MovieLens users rate several films within the same second or a
# few seconds, and there one second moves a gap by a bucket or two. The
# cloned times keep a film's two tokens exactly equal in time, whatever the
# data.
#
# ````{solution-end}
# ````

# %% [markdown]
# ```{exercise}
# :label: ex-08-5
#
# With `max_seq_len = 50` films, how many token slots does COBRA's backbone
# attend over, and how much larger is one attention matrix than plain
# HSTU's, which has one token per film? (Hint: `CobraRecommender` also
# appends the open SID.) *About a minute.* Check: `check("08.5", (slots,
# ratio))`.
# ```

# %% [markdown] tags=["solution"]
# ````{solution-start} ex-08-5
# :class: dropdown
# ````

# %% tags=["solution"]
films = model.config.max_seq_len  # 50 on the cpu profile
slots = 2 * (films + 1)  # a SID and a VID per film, plus the open SID's pair
ratio = slots**2 / films**2
print(f"{films} films: {slots} token slots (the backbone holds "
      f"{model.backbone.max_seq_len}); attention matrix {ratio:.2f}x plain HSTU's")
check("08.5", (slots, ratio))

# %% [markdown] tags=["solution"]
# The open SID's pair makes it `2 (50 + 1) = 102` slots, not 100 (the open
# SID's VID slot is padding). Attention cost grows with the square of the
# length, so interleaving costs a little more than 4 times plain HSTU's
# attention per layer.
#
# ````{solution-end}
# ````
