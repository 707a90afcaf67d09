"""Item embeddings: the ID table, semantic-ID tables (PrefixN, n-gram, RQ-sum) and their fusion.

Explained in chapter 06 (book/06_prefixn.py).

Every module here maps item ids ``(...)`` int64 (``0`` = padding, items ``1..N``)
to vectors ``(..., D)`` and returns the zero vector for padding.

* :class:`ItemIdEmbedding` — one free row per item, ``(N + 1, D)``.
* Semantic-ID tables read an item's codes ``(c1, ..., cL)`` from ``codes``
  (``(N, L)`` int64, row ``i - 1`` = item ``i``, the output of :mod:`cobra.sid`)
  and sum rows of one shared table:

  - ``prefixN``: the prefixes ``(c1)``, ``(c1, c2)``, ..., ``(c1, ..., cL)``, each
    hashed into a table of ``table_size`` rows. Items that share a prefix share
    that row, so a rarely seen item borrows the rows of its better-known
    neighbours in the code tree.
  - ``ngram``: every contiguous n-gram ``(c_s, ..., c_{s+n-1})`` for ``n`` in
    ``ngram_sizes``, keyed by ``(n, s)`` as well, hashed the same way.
  - ``rqsum``: one row per (level, code), no hashing: the sum of per-level
    code embeddings (what a residual quantiser's decoder would add up).

* Fusion with the ID table (``FUSIONS``): ``sum``, ``fc`` (concat -> linear),
  ``mlp``, ``scalar_gate`` and ``vector_gate`` (a sigmoid gate computed from both
  vectors, one number or one per dim), ``scalar_weight`` (``id + w * sid`` with
  one learned ``w``, 1 at start, so it begins as ``sum`` and shows how much
  weight training gives the SID term).

The hash (:func:`tuple_hash`) is fixed and deterministic: a polynomial rolling
hash modulo the Mersenne prime ``2^31 - 1`` with multiplier ``1_000_003``, over
the key ``(tag..., c...)``, then ``mod table_size``, plus 1 (row 0 is padding).
All arithmetic stays below ``2^52`` in int64, so it is exact on every device.
Collisions: two different prefixes can land on the same row. With ``m``
distinct keys in ``S`` rows, random hashing would leave about
``m (1 - (1 - 1/S)^(m - 1))`` keys sharing a row with another (chapter 06 checks
this against :meth:`HashedSIDEmbedding.collisions`). The hash is linear in its
last element, so consecutive codes land on consecutive rows: the level-1
prefixes never collide with each other when ``K <= S``, but collisions between
levels come in runs. :meth:`HashedSIDEmbedding.collisions` counts
them for a real codebook.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

HASH_MODULUS = 2**31 - 1
HASH_MULTIPLIER = 1_000_003
DEFAULT_TABLE_SIZE = 2**16


def tuple_hash(parts: Sequence[torch.Tensor | int], table_size: int) -> torch.Tensor:
    """Hash a tuple of non-negative integers, element-wise over tensors, into rows ``1..table_size``.

    ``h = 0; for x in parts: h = (h * 1_000_003 + x + 1) mod (2^31 - 1)``; returns ``h mod table_size + 1``.

    Args:
        parts: ints (tags such as the prefix length) and/or int64 tensors of one common
            shape (codes); values must be in ``[0, 2^31 - 2]``.
        table_size: number of hash rows ``S``.

    Returns:
        int64 tensor of the tensors' shape, values in ``[1, table_size]``.
    """
    shape = next((p.shape for p in parts if isinstance(p, torch.Tensor)), ())
    device = next((p.device for p in parts if isinstance(p, torch.Tensor)), None)
    h = torch.zeros(shape, dtype=torch.int64, device=device)
    for x in parts:
        h = (h * HASH_MULTIPLIER + x + 1) % HASH_MODULUS
    return h % table_size + 1


def _as_codes(codes: torch.Tensor | np.ndarray, levels: int | None) -> torch.Tensor:
    """Validate ``codes`` (N, L) and keep the first ``levels`` columns -> (N, L') int64."""
    codes = torch.as_tensor(codes)
    if codes.dim() != 2 or codes.dtype.is_floating_point or codes.dtype == torch.bool:
        raise ValueError(
            f"codes must be an integer array of shape (N, L) (row i-1 = item i); got "
            f"{tuple(codes.shape)} {codes.dtype}. Pass the codes from cobra.sid."
        )
    codes = codes.to(torch.int64)
    if codes.numel() and int(codes.min()) < 0:
        raise ValueError("codes must be non-negative; got a negative code (padding is item 0, not a code)")
    if levels is not None:
        if not 1 <= levels <= codes.shape[1]:
            raise ValueError(f"levels={levels} must be between 1 and the number of code columns {codes.shape[1]}")
        codes = codes[:, :levels]
    return codes


class ItemEmbedding(nn.Module):
    """Base class: ids ``(...)`` int64 -> ``(..., D)``; padding id 0 -> zero vector.

    Attributes:
        num_items: ``N``.
        dim: ``D``.
    """

    num_items: int
    dim: int

    def all_items(self) -> torch.Tensor:
        """(N + 1, D) float: the vector of every id ``0..N`` (row 0 is zero)."""
        device = next(self.parameters()).device
        return self(torch.arange(self.num_items + 1, device=device))


class ItemIdEmbedding(ItemEmbedding):
    """The classic ID table: ``(N + 1, D)``, ``padding_idx = 0``, rows ~ N(0, 0.02).

    Args:
        num_items: ``N``.
        dim: ``D``.
    """

    def __init__(self, num_items: int, dim: int) -> None:
        super().__init__()
        self.num_items = num_items
        self.dim = dim
        self.table = nn.Embedding(num_items + 1, dim, padding_idx=0)
        nn.init.normal_(self.table.weight, 0.0, 0.02)
        with torch.no_grad():
            self.table.weight[0].zero_()

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """ids: (...) int64 -> (..., D) float."""
        return self.table(ids)


@dataclass(frozen=True)
class SIDOptions:
    """Options shared by the semantic-ID tables.

    Attributes:
        table_size: hash rows ``S`` for ``prefixN`` and ``ngram``.
        ngram_sizes: n-gram lengths for ``ngram``.
        levels: use only the first ``levels`` code columns (default all, including a
            uniqueness column if ``codes`` has one).
    """

    table_size: int = DEFAULT_TABLE_SIZE
    ngram_sizes: tuple[int, ...] = (1, 2)
    levels: int | None = None


class SIDEmbedding(ItemEmbedding):
    """Sum of rows of one table; which rows each item uses is fixed at construction.

    Buffers:
        codes: (N + 1, L) int64 item -> codes; row 0 (padding) is ``-1``.
        rows: (N + 1, R) int64 table rows per item; row 0 is all 0 (the zero padding row).

    Args:
        codes: (N, L) int64, row ``i - 1`` = item ``i``.
        rows: (N, R) int64 rows in ``1..num_rows`` for each item.
        num_rows: table rows (excluding the padding row 0).
        dim: ``D``.
    """

    def __init__(self, codes: torch.Tensor, rows: torch.Tensor, num_rows: int, dim: int) -> None:
        super().__init__()
        self.num_items = codes.shape[0]
        self.dim = dim
        self.num_rows = num_rows
        pad_codes = torch.full((1, codes.shape[1]), -1, dtype=torch.int64)
        self.register_buffer("codes", torch.cat([pad_codes, codes]), persistent=True)  # (N+1, L)
        pad_rows = torch.zeros((1, rows.shape[1]), dtype=torch.int64)
        self.register_buffer("rows", torch.cat([pad_rows, rows]), persistent=True)  # (N+1, R)
        self.table = nn.Embedding(num_rows + 1, dim, padding_idx=0)
        nn.init.normal_(self.table.weight, 0.0, 0.02)
        with torch.no_grad():
            self.table.weight[0].zero_()

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """ids: (...) int64 in ``0..N`` -> (..., D) float, the sum of the item's rows."""
        return self.table(self.rows[ids]).sum(dim=-2)  # (..., R, D) -> (..., D)


class HashedSIDEmbedding(SIDEmbedding):
    """A :class:`SIDEmbedding` whose rows come from :func:`tuple_hash`; reports collisions."""

    keys: list[tuple[tuple[int, ...], torch.Tensor]]  # per row column: (tag, codes (N, n)) hashed

    def collisions(self) -> list[dict[str, int]]:
        """Count hash collisions, per row column (prefix length or n-gram slot).

        Returns:
            One dict per column: ``keys`` (distinct code tuples), ``rows`` (distinct rows
            they hash to), ``collided_keys`` (keys sharing a row with a different key,
            within the column or with another column).
        """
        rows = self.rows[1:]  # (N, R)
        owners: dict[int, set[tuple[int, ...]]] = {}
        per_col: list[dict[tuple[int, ...], int]] = []
        for col, (tag, sub) in enumerate(self.keys):
            pairs = zip(sub.tolist(), rows[:, col].tolist(), strict=True)
            mapping = {(*tag, *map(int, k)): int(r) for k, r in pairs}
            per_col.append(mapping)
            for key, r in mapping.items():
                owners.setdefault(r, set()).add(key)
        out = []
        for mapping in per_col:
            collided = sum(1 for key, r in mapping.items() if len(owners[r]) > 1)
            out.append({"keys": len(mapping), "rows": len(set(mapping.values())), "collided_keys": collided})
        return out


class PrefixNEmbedding(HashedSIDEmbedding):
    """PrefixN: ``E(item) = sum_l table[hash(l, c1, ..., cl)]`` for ``l = 1..L``.

    Args:
        codes: (N, L) int64, row ``i - 1`` = item ``i``.
        dim: ``D``.
        table_size: hash rows ``S``.
        levels: use the first ``levels`` code columns (default all).
    """

    def __init__(
        self,
        codes: torch.Tensor | np.ndarray,
        dim: int,
        table_size: int = DEFAULT_TABLE_SIZE,
        levels: int | None = None,
    ) -> None:
        codes = _as_codes(codes, levels)
        L = codes.shape[1]
        keys = [((length,), codes[:, :length]) for length in range(1, L + 1)]
        rows = torch.stack(
            [tuple_hash([*tag, *sub.unbind(1)], table_size) for tag, sub in keys], dim=1
        )  # (N, L)
        super().__init__(codes, rows, table_size, dim)
        self.keys = keys

    @classmethod
    def build(cls, codes: torch.Tensor | np.ndarray, dim: int, options: SIDOptions) -> PrefixNEmbedding:
        """Registry entry point."""
        return cls(codes, dim, options.table_size, options.levels)


class NgramEmbedding(HashedSIDEmbedding):
    """N-gram: ``E(item) = sum_{n, s} table[hash(n, s, c_s, ..., c_{s+n-1})]``.

    Every contiguous n-gram of the codes for each ``n`` in ``ngram_sizes`` (``n <= L``),
    tagged with its length ``n`` and start ``s`` so equal codes at different levels differ.

    Args:
        codes: (N, L) int64.
        dim: ``D``.
        table_size: hash rows ``S``.
        ngram_sizes: n-gram lengths, e.g. ``(1, 2)``.
        levels: use the first ``levels`` code columns (default all).
    """

    def __init__(
        self,
        codes: torch.Tensor | np.ndarray,
        dim: int,
        table_size: int = DEFAULT_TABLE_SIZE,
        ngram_sizes: Sequence[int] = (1, 2),
        levels: int | None = None,
    ) -> None:
        codes = _as_codes(codes, levels)
        L = codes.shape[1]
        if not ngram_sizes or any(not 1 <= n <= L for n in ngram_sizes):
            raise ValueError(f"ngram_sizes={tuple(ngram_sizes)} must be non-empty with each n in 1..L={L}")
        keys = [((n, s), codes[:, s : s + n]) for n in ngram_sizes for s in range(L - n + 1)]
        rows = torch.stack(
            [tuple_hash([*tag, *sub.unbind(1)], table_size) for tag, sub in keys], dim=1
        )  # (N, R)
        super().__init__(codes, rows, table_size, dim)
        self.keys = keys

    @classmethod
    def build(cls, codes: torch.Tensor | np.ndarray, dim: int, options: SIDOptions) -> NgramEmbedding:
        """Registry entry point."""
        return cls(codes, dim, options.table_size, options.ngram_sizes, options.levels)


class RQSumEmbedding(SIDEmbedding):
    """RQ-sum: ``E(item) = sum_l table_l[c_l]``, one exact row per (level, code), no hashing.

    Level ``l`` uses rows ``offset_l + c + 1`` with ``K_l = max code of level l + 1`` rows.

    Args:
        codes: (N, L) int64.
        dim: ``D``.
        levels: use the first ``levels`` code columns (default all).
    """

    def __init__(self, codes: torch.Tensor | np.ndarray, dim: int, levels: int | None = None) -> None:
        codes = _as_codes(codes, levels)
        sizes = codes.max(dim=0).values + 1  # (L,) K_l
        offsets = torch.cumsum(sizes, 0) - sizes  # (L,)
        rows = codes + offsets.unsqueeze(0) + 1  # (N, L)
        super().__init__(codes, rows, int(sizes.sum()), dim)

    @classmethod
    def build(cls, codes: torch.Tensor | np.ndarray, dim: int, options: SIDOptions) -> RQSumEmbedding:
        """Registry entry point."""
        return cls(codes, dim, options.levels)


SID_EMBEDDINGS: dict[str, Callable[[torch.Tensor | np.ndarray, int, SIDOptions], SIDEmbedding]] = {
    "prefixN": PrefixNEmbedding.build,
    "ngram": NgramEmbedding.build,
    "rqsum": RQSumEmbedding.build,
}


# ----------------------------------------------------------------------------------------- fusion
class SumFusion(nn.Module):
    """``id + sid``. Args: dim ``D`` (unused, uniform constructor)."""

    def __init__(self, dim: int) -> None:
        super().__init__()

    def forward(self, id_emb: torch.Tensor, sid_emb: torch.Tensor) -> torch.Tensor:
        """id_emb, sid_emb: (..., D) -> (..., D)."""
        return id_emb + sid_emb


class FCFusion(nn.Module):
    """``Linear(concat(id, sid))``: (..., 2D) -> (..., D). Args: dim ``D``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(2 * dim, dim)

    def forward(self, id_emb: torch.Tensor, sid_emb: torch.Tensor) -> torch.Tensor:
        """id_emb, sid_emb: (..., D) -> (..., D)."""
        return self.linear(torch.cat([id_emb, sid_emb], dim=-1))


class MLPFusion(nn.Module):
    """``Linear(GELU(Linear(concat(id, sid))))`` with hidden width ``2D``. Args: dim ``D``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(2 * dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, id_emb: torch.Tensor, sid_emb: torch.Tensor) -> torch.Tensor:
        """id_emb, sid_emb: (..., D) -> (..., D)."""
        return self.mlp(torch.cat([id_emb, sid_emb], dim=-1))


class ScalarGateFusion(nn.Module):
    """``g * id + (1 - g) * sid`` with ``g = sigmoid(Linear(concat))`` one number per item. Args: dim ``D``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gate = nn.Linear(2 * dim, 1)

    def forward(self, id_emb: torch.Tensor, sid_emb: torch.Tensor) -> torch.Tensor:
        """id_emb, sid_emb: (..., D) -> (..., D)."""
        g = torch.sigmoid(self.gate(torch.cat([id_emb, sid_emb], dim=-1)))  # (..., 1)
        return g * id_emb + (1 - g) * sid_emb


class VectorGateFusion(nn.Module):
    """``g * id + (1 - g) * sid`` with ``g = sigmoid(Linear(concat))`` one number per dim. Args: dim ``D``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gate = nn.Linear(2 * dim, dim)

    def forward(self, id_emb: torch.Tensor, sid_emb: torch.Tensor) -> torch.Tensor:
        """id_emb, sid_emb: (..., D) -> (..., D)."""
        g = torch.sigmoid(self.gate(torch.cat([id_emb, sid_emb], dim=-1)))  # (..., D)
        return g * id_emb + (1 - g) * sid_emb


class ScalarWeightFusion(nn.Module):
    """``id + w * sid`` with one learned scalar ``w`` (starts at 1). Args: dim ``D`` (unused)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(()))

    def forward(self, id_emb: torch.Tensor, sid_emb: torch.Tensor) -> torch.Tensor:
        """id_emb, sid_emb: (..., D) -> (..., D)."""
        return id_emb + self.weight * sid_emb


FUSIONS: dict[str, type[nn.Module]] = {
    "sum": SumFusion,
    "fc": FCFusion,
    "mlp": MLPFusion,
    "scalar_gate": ScalarGateFusion,
    "vector_gate": VectorGateFusion,
    "scalar_weight": ScalarWeightFusion,
}


class FusedItemEmbedding(ItemEmbedding):
    """ID table fused with a semantic-ID table: ``fusion(id(ids), sid(ids))``, zero at padding.

    Args:
        id_table: :class:`ItemIdEmbedding`.
        sid_table: a :class:`SIDEmbedding` over the same items.
        fusion: a module from ``FUSIONS``.
    """

    def __init__(self, id_table: ItemIdEmbedding, sid_table: SIDEmbedding, fusion: nn.Module) -> None:
        super().__init__()
        if id_table.num_items != sid_table.num_items or id_table.dim != sid_table.dim:
            raise ValueError(
                f"ID table ({id_table.num_items} items, dim {id_table.dim}) and SID table "
                f"({sid_table.num_items} items, dim {sid_table.dim}) must agree"
            )
        self.num_items = id_table.num_items
        self.dim = id_table.dim
        self.id_table = id_table
        self.sid_table = sid_table
        self.fusion = fusion

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """ids: (...) int64 -> (..., D) float."""
        out = self.fusion(self.id_table(ids), self.sid_table(ids))  # (..., D)
        return out * (ids != 0).unsqueeze(-1).to(out.dtype)


EMBEDDING_KINDS = ("id", *SID_EMBEDDINGS)


def build_item_embedding(
    kind: str,
    num_items: int,
    dim: int,
    codes: torch.Tensor | np.ndarray | None = None,
    fusion: str | None = None,
    *,
    table_size: int = DEFAULT_TABLE_SIZE,
    ngram_sizes: Sequence[int] = (1, 2),
    levels: int | None = None,
) -> ItemEmbedding:
    """Build the item embedding named ``kind``, optionally fused with the ID table.

    Args:
        kind: ``"id"`` or a key of ``SID_EMBEDDINGS`` (``prefixN``, ``ngram``, ``rqsum``).
        num_items: ``N``.
        dim: ``D``.
        codes: (N, L) int64 item codes, required for the SID kinds.
        fusion: ``None`` (the SID table alone) or a key of ``FUSIONS`` (fuse with an ID table).
        table_size: hash rows for ``prefixN`` / ``ngram``.
        ngram_sizes: n-gram lengths for ``ngram``.
        levels: use only the first ``levels`` code columns.

    Returns:
        An :class:`ItemEmbedding`: ids (...) int64 -> (..., D) float.
    """
    if kind == "id":
        if fusion is not None:
            raise ValueError(f"fusion={fusion!r} needs a semantic-ID kind; kind='id' has nothing to fuse")
        return ItemIdEmbedding(num_items, dim)
    if kind not in SID_EMBEDDINGS:
        raise ValueError(f"unknown embedding kind {kind!r}; choose one of {list(EMBEDDING_KINDS)}")
    if fusion is not None and fusion not in FUSIONS:
        raise ValueError(f"unknown fusion {fusion!r}; choose one of {list(FUSIONS)} or None")
    if codes is None:
        raise ValueError(f"embedding kind {kind!r} needs codes (N, L); build them with cobra.sid first")
    if len(codes) != num_items:
        raise ValueError(f"codes has {len(codes)} rows but num_items={num_items}; row i-1 must be item i")
    options = SIDOptions(table_size=table_size, ngram_sizes=tuple(ngram_sizes), levels=levels)
    sid_table = SID_EMBEDDINGS[kind](codes, dim, options)
    if fusion is None:
        return sid_table
    return FusedItemEmbedding(ItemIdEmbedding(num_items, dim), sid_table, FUSIONS[fusion](dim))
