"""Next-item losses: sampled softmax with uniform negatives (the HSTU setting) and full softmax.

Explained in chapter 05 (book/05_hstu.py); the COBRA losses at the end of the file (InfoNCE with its
negative sources, :class:`VidCache`, the level-wise code cross entropy) in chapter 09 (book/09_dual_loss.py).

Both losses score a query ``q`` (a hidden state at one position) against item
vectors ``e`` by cosine similarity over a temperature::

    logit(q, e) = <q / |q|, e / |e|> / temperature

and take the cross entropy of the true next item (the *positive*).

* :func:`sampled_softmax_loss` compares the positive with ``R`` negatives drawn
  uniformly from ``1..N`` for every query (so the cost does not grow with the
  catalogue). A negative that happens to equal the positive (an *accidental
  hit*) would push the positive away from itself; its logit is set to ``-5e4``,
  so it gets no probability, as in the HSTU reference.
* :func:`full_softmax_loss` compares with all ``N`` items: exact, and cheap when
  the catalogue is small (MovieLens-100K has 1,682 items).

Both take only valid positions: flatten the batch with :func:`valid_positions`
first. Items are given either as a table ``(N + 1, D)`` (row 0 padding) or as a
function ``ids (...) int64 -> (..., D)`` (an :class:`cobra.embeddings.ItemEmbedding`),
in which case ``num_items`` must be passed.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

ACCIDENTAL_HIT_LOGIT = -5e4
# sampled_softmax_loss computes all (M, U) logits of the U distinct sampled items with one matrix product when
# U <= GEMM_ROWS_PER_NEGATIVE * R (a dense product is that much cheaper per value than gathering (M, R, D)
# rows); otherwise it gathers. Both give the same values.
GEMM_ROWS_PER_NEGATIVE = 16

Items = torch.Tensor | Callable[[torch.Tensor], torch.Tensor]


def valid_positions(hidden: torch.Tensor, next_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Flatten a padded batch to the positions that have a next item.

    Args:
        hidden: (B, T, D) float hidden states.
        next_ids: (B, T) int64 next item per position, 0 where there is none (padding).

    Returns:
        query (M, D) float and positives (M,) int64, M = number of non-zero ``next_ids``.
    """
    keep = next_ids != 0  # (B, T)
    return hidden[keep], next_ids[keep]


def _lookup(items: Items, ids: torch.Tensor) -> torch.Tensor:
    """ids (...) int64 -> (..., D) item vectors."""
    return items[ids] if isinstance(items, torch.Tensor) else items(ids)


def _num_items(items: Items, num_items: int | None) -> int:
    if num_items is not None:
        return num_items
    if isinstance(items, torch.Tensor):
        return items.shape[0] - 1
    raise ValueError("num_items is required when items is a function (it is read off a (N + 1, D) table)")


def _check_positives(positives: torch.Tensor) -> None:
    if torch.compiler.is_compiling():  # a data-dependent check would break the compiled graph
        return
    if positives.numel() and bool((positives <= 0).any()):
        raise ValueError(
            "positives contain padding (0) or negative ids; pass only valid positions "
            "(use cobra.losses.valid_positions(hidden, next_ids))"
        )


def sample_negatives(
    num_queries: int,
    num_negatives: int,
    num_items: int,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Uniform negatives from ``1..N`` for every query.

    Args:
        num_queries: ``M``.
        num_negatives: ``R``.
        num_items: ``N``.
        generator: optional torch generator (on the device the ids are drawn on).
        device: where to draw; default the generator's device, else CPU.

    Returns:
        (M, R) int64 item ids in ``1..N``.
    """
    if device is None:
        device = generator.device if generator is not None else "cpu"
    return torch.randint(1, num_items + 1, (num_queries, num_negatives), generator=generator, device=device)


def sampled_softmax_loss(
    query: torch.Tensor,
    positives: torch.Tensor,
    items: Items,
    num_negatives: int = 128,
    temperature: float = 0.05,
    generator: torch.Generator | None = None,
    num_items: int | None = None,
    negatives: torch.Tensor | None = None,
) -> torch.Tensor:
    """Sampled softmax with uniform negatives and masked accidental hits.

    Args:
        query: (M, D) float, valid positions only.
        positives: (M,) int64 true next items in ``1..N``.
        items: (N + 1, D) float table or a function ``ids (...) int64 -> (..., D)``.
        num_negatives: ``R`` negatives per query.
        temperature: logits are cosine / temperature.
        generator: torch generator for the negatives (its device must match ``query``'s).
        num_items: ``N`` (required when ``items`` is a function).
        negatives: optional (M, R) int64 fixed negatives (tests, custom samplers); when given,
            nothing is sampled.

    Returns:
        () float32 mean loss over the M queries (0 when M == 0).
    """
    _check_positives(positives)
    if query.shape[0] == 0:
        return query.sum() * 0.0
    if negatives is None:
        n = _num_items(items, num_items)
        negatives = sample_negatives(query.shape[0], num_negatives, n, generator, query.device)  # (M, R)
    q = F.normalize(query.float(), dim=-1)  # (M, D)
    # Look up and normalise each distinct item once (U <= min(N, M (R + 1)) rows): the same values as
    # normalising the (M, R, D) gathered negatives, without the (M, R, D) norm and its backward.
    ids, inverse = torch.unique(torch.cat([positives.unsqueeze(1), negatives], dim=1), return_inverse=True)
    table = F.normalize(_lookup(items, ids).float(), dim=-1)  # (U, D)
    if ids.shape[0] <= GEMM_ROWS_PER_NEGATIVE * negatives.shape[1]:
        # Few distinct rows (a small catalogue): one (M, U) product, then pick the sampled columns.
        logits = q @ table.T / temperature  # (M, U)
        pos_logits = logits.gather(1, inverse[:, :1])  # (M, 1)
        neg_logits = logits.gather(1, inverse[:, 1:])  # (M, R)
    else:
        pos, neg = table[inverse[:, 0]], table[inverse[:, 1:]]  # (M, D), (M, R, D)
        pos_logits = (q * pos).sum(-1, keepdim=True) / temperature  # (M, 1)
        neg_logits = torch.einsum("md,mrd->mr", q, neg) / temperature  # (M, R)
    hit = negatives == positives.unsqueeze(1)  # (M, R)
    neg_logits = neg_logits.masked_fill(hit, ACCIDENTAL_HIT_LOGIT)
    logits = torch.cat([pos_logits, neg_logits], dim=1)  # (M, 1 + R)
    return -F.log_softmax(logits, dim=1)[:, 0].mean()


def full_softmax_loss(
    query: torch.Tensor,
    positives: torch.Tensor,
    items: Items,
    num_negatives: int | None = None,
    temperature: float = 0.05,
    generator: torch.Generator | None = None,
    num_items: int | None = None,
) -> torch.Tensor:
    """Cross entropy over the whole catalogue ``1..N`` (column 0, padding, is never a class).

    Args:
        query: (M, D) float, valid positions only.
        positives: (M,) int64 true next items in ``1..N``.
        items: (N + 1, D) float table or a function ``ids (...) int64 -> (..., D)``.
        num_negatives: ignored (accepted so every entry of ``LOSSES`` takes the same arguments).
        temperature: logits are cosine / temperature.
        generator: ignored (as ``num_negatives``).
        num_items: ``N`` (required when ``items`` is a function).

    Returns:
        () float32 mean loss over the M queries (0 when M == 0).
    """
    del num_negatives, generator
    _check_positives(positives)
    if query.shape[0] == 0:
        return query.sum() * 0.0
    n = _num_items(items, num_items)
    ids = torch.arange(1, n + 1, device=query.device)  # (N,)
    q = F.normalize(query.float(), dim=-1)  # (M, D)
    table = F.normalize(_lookup(items, ids).float(), dim=-1)  # (N, D)
    logits = q @ table.T / temperature  # (M, N), column c = item c + 1
    return F.cross_entropy(logits, positives - 1)


LOSSES: dict[str, Callable[..., torch.Tensor]] = {
    "sampled_softmax": sampled_softmax_loss,
    "full_softmax": full_softmax_loss,
}


# ------------------------------------------------------------------------------------------------------- COBRA
# The two losses of the interleaved model (chapter 09, book/09_dual_loss.py):
#
# * SID positions: sampled softmax over SID vectors (above), or :func:`code_ce_loss`, a level-wise cross
#   entropy over the codes c1..cL predicted by one linear head per level.
# * VID positions: :func:`info_nce_loss`, InfoNCE over cosine similarities with a selectable source of
#   negatives (``VID_NEGATIVES``):
#
#   - ``in-batch`` (the source article's): the other positives of the batch. SID vectors in the pool are
#     masked out, and every pool entry equal to the row's positive item is masked (a duplicate of the
#     positive is neither a negative nor a second positive). The number of negatives grows and shrinks with
#     the batch: the failure the book reproduces in chapter 09.
#   - ``catalogue``: every item's VID, ``1..N``: a full softmax over the catalogue, independent of the batch.
#   - ``cache``: the entries of a :class:`VidCache`, a FIFO queue of recent (detached) item VIDs and their
#     ids; entries equal to the positive are masked. Also independent of the batch size.

VID_NEGATIVES = ("in-batch", "catalogue", "cache")


class VidCache(torch.nn.Module):
    """A fixed-size FIFO queue of item vectors (detached) and their ids, negatives for ``cache`` InfoNCE.

    Slots are written in a ring; once full, each push overwrites the oldest entries. The state lives in
    buffers, so it is saved with the model's ``state_dict``.

    Args:
        size: number of slots ``S``.
        dim: vector width ``D``.

    Buffers:
        vectors: (S, D) float32. ids: (S,) int64, 0 = empty slot. pointer: () int64 next slot to write.
    """

    def __init__(self, size: int, dim: int) -> None:
        super().__init__()
        if size < 1:
            raise ValueError(f"VidCache size must be >= 1, got {size}")
        self.size = size
        self.register_buffer("vectors", torch.zeros(size, dim))
        self.register_buffer("ids", torch.zeros(size, dtype=torch.int64))
        self.register_buffer("pointer", torch.zeros((), dtype=torch.int64))

    def __len__(self) -> int:
        return int((self.ids != 0).sum())

    @torch.no_grad()
    def push(self, ids: torch.Tensor, vectors: torch.Tensor) -> None:
        """Append ``ids`` (M,) int64 and ``vectors`` (M, D) in order (oldest slots overwritten first)."""
        if ids.shape[0] != vectors.shape[0]:
            raise ValueError(f"ids ({ids.shape[0]}) and vectors ({vectors.shape[0]}) must have the same length")
        ids, vectors = ids[-self.size:], vectors[-self.size:].detach().float()  # only the newest S can stay
        m = ids.shape[0]
        slots = (self.pointer + torch.arange(m, device=self.ids.device)) % self.size  # (m,)
        self.ids[slots] = ids.to(self.ids.device)
        self.vectors[slots] = vectors.to(self.vectors.device)
        self.pointer.copy_((self.pointer + m) % self.size)

    def entries(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The filled slots: ids (S',) int64 and vectors (S', D) float32, oldest first."""
        order = (self.pointer + torch.arange(self.size, device=self.ids.device)) % self.size  # oldest first
        ids, vectors = self.ids[order], self.vectors[order]
        keep = ids != 0
        return ids[keep], vectors[keep]

    def clear(self) -> None:
        """Empty the queue."""
        self.ids.zero_()
        self.vectors.zero_()
        self.pointer.zero_()


def _nce_from_negatives(q: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, masked: torch.Tensor,
                        temperature: float) -> torch.Tensor:
    """Mean ``-log softmax`` of the positive column; q, pos (M, D) and neg (C, D) normalised, masked (M, C)."""
    pos_logits = (q * pos).sum(-1, keepdim=True) / temperature  # (M, 1)
    neg_logits = (q @ neg.T / temperature).masked_fill(masked, float("-inf"))  # (M, C)
    logits = torch.cat([pos_logits, neg_logits], dim=1)  # (M, 1 + C)
    return -F.log_softmax(logits, dim=1)[:, 0].mean()


def info_nce_loss(
    query: torch.Tensor,
    positives: torch.Tensor,
    items: Items,
    negatives: str = "catalogue",
    temperature: float = 0.05,
    cache: VidCache | None = None,
    num_items: int | None = None,
    pool_ids: torch.Tensor | None = None,
    pool_vectors: torch.Tensor | None = None,
    pool_is_sid: torch.Tensor | None = None,
) -> torch.Tensor:
    """InfoNCE of the VID positions over cosine similarities, with a selectable source of negatives.

    ``loss_m = -log( exp(s(q_m, v+)/t) / (exp(s(q_m, v+)/t) + sum_{n in negatives(m)} exp(s(q_m, v_n)/t)) )``
    with ``s`` the cosine and ``v+ = items[positives[m]]``.

    Args:
        query: (M, D) float predicted VIDs (hidden states at the VID-loss positions).
        positives: (M,) int64 true items in ``1..N``.
        items: (N + 1, D) float VID table or a function ``ids (...) int64 -> (..., D)``.
        negatives: ``in-batch``, ``catalogue`` or ``cache`` (see ``VID_NEGATIVES``).
        temperature: logits are cosine / temperature.
        cache: the :class:`VidCache` for ``cache`` (read only: push the batch after the loss).
        num_items: ``N`` (required for ``catalogue`` when ``items`` is a function).
        pool_ids / pool_vectors / pool_is_sid: ``in-batch`` only, the batch's candidate pool: (C,) int64
            item ids, (C, D) float vectors (with gradients) and (C,) bool True for SID-space vectors. Default:
            the positives themselves, ``(positives, items[positives], all False)``. SID entries and entries
            equal to the row's positive are masked.

    Returns:
        () float32 mean loss over the M queries (0 when M == 0).
    """
    if negatives not in VID_NEGATIVES:
        raise ValueError(f"unknown VID negatives {negatives!r}; choose one of {list(VID_NEGATIVES)}")
    _check_positives(positives)
    if query.shape[0] == 0:
        return query.sum() * 0.0
    q = F.normalize(query.float(), dim=-1)  # (M, D)
    if negatives == "catalogue":
        n = _num_items(items, num_items)
        table = F.normalize(_lookup(items, torch.arange(1, n + 1, device=query.device)).float(), dim=-1)  # (N, D)
        return F.cross_entropy(q @ table.T / temperature, positives - 1)  # column c = item c + 1
    pos = F.normalize(_lookup(items, positives).float(), dim=-1)  # (M, D)
    if negatives == "in-batch":
        if pool_ids is None:
            pool_ids, pool_vectors = positives, _lookup(items, positives)
        elif pool_vectors is None:
            raise ValueError("pool_vectors is required with pool_ids")
        neg = F.normalize(pool_vectors.float(), dim=-1)  # (C, D)
        masked = pool_ids.unsqueeze(0) == positives.unsqueeze(1)  # (M, C) duplicates of the positive
        if pool_is_sid is not None:
            masked = masked | pool_is_sid.unsqueeze(0)  # SID vectors are never VID negatives
        return _nce_from_negatives(q, pos, neg, masked, temperature)
    if cache is None:
        raise ValueError("negatives='cache' needs a VidCache (cache=...)")
    cache_ids, cache_vectors = cache.entries()  # (S',), (S', D)
    neg = F.normalize(cache_vectors.to(q.device), dim=-1)  # (S', D)
    masked = cache_ids.to(q.device).unsqueeze(0) == positives.unsqueeze(1)  # (M, S')
    return _nce_from_negatives(q, pos, neg, masked, temperature)


def code_ce_loss(logits: list[torch.Tensor], codes: torch.Tensor) -> torch.Tensor:
    """Level-wise code cross entropy: ``sum_l CE(logits_l, codes[:, l])``, each CE a mean over the M rows.

    Args:
        logits: L tensors (M, K_l) float, one per code level (from per-level heads on the hidden state).
        codes: (M, L) int64 true codes of the target items, ``0 <= codes[:, l] < K_l``.

    Returns:
        () float32 (0 when M == 0).
    """
    if len(logits) != codes.shape[1]:
        raise ValueError(f"got {len(logits)} heads for {codes.shape[1]} code levels")
    if codes.shape[0] == 0:
        return sum(lg.sum() for lg in logits) * 0.0
    return sum(F.cross_entropy(lg.float(), codes[:, level]) for level, lg in enumerate(logits))
