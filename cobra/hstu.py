"""HSTU: pointwise SiLU attention with a learned relative position and time bias.

Explained in chapter 05 (book/05_hstu.py).

HSTU (Zhai et al., "Actions Speak Louder than Words", ICML 2024) replaces the
softmax of a Transformer block by a pointwise ``SiLU`` normalised by a fixed
length, and gates the attention output by a fourth projection ``U``. One
block, for the hidden states ``x`` of a right-padded batch::

    u, v, q, k = split(SiLU(LayerNorm(x) @ W_uvqk))            # fused projection
    A          = SiLU(q k^T + rab(positions, times)) / n        # pointwise, no softmax
    A          = A * allowed                                   # causal and key padding
    y          = x + W_o(Dropout(u * LayerNorm(A v)))          # gating by U, residual

This is our own code, written to follow the public reference
(meta-recsys/generative-recommenders, ``research/modeling/sequential/hstu.py``);
the places where a choice had to be made are listed here.

Time buckets
    ``time_bucket(dt) = clamp(floor(ln(max(|dt|, 1)) / 0.301), 0, 128)`` on gaps in
    seconds (:func:`time_bucket`). We evaluate the logarithm in float64 so the
    bucket of a given gap is the same on every device.

Which time the bias sees (the *query time*)
    The time term at query position ``i`` and key position ``j`` uses
    ``dt = query_time[i] - timestamps[j]`` where ``query_time[i]`` is the timestamp of
    the item *after* position ``i``: the moment the prediction made at ``i`` is
    needed. Inside a sequence this is ``timestamps[i + 1]``. For the last real
    position the reference uses the target's timestamp (its data pipeline writes
    it just after the history): the time of the request, which a recommender
    knows when it serves one. We do the same when the batch carries it
    (``Batch.query_time``: the window's last target in training, the target's
    timestamp in evaluation) and the model's ``request_time`` is on (the
    default; :func:`request_times`). With ``request_time=False``, or a batch
    without ``query_time``, the last real position uses its own timestamp ("now"
    is the time of the latest event), a time gap of zero that the model never
    sees at inner positions (chapter 05 measures the difference). Pass
    ``query_timestamps`` (or ``last`` to :func:`next_timestamps`) to set the times
    yourself, or to clone them when SID and VID tokens are interleaved. Padding
    positions get the last real position's query time; they are masked as keys
    and their outputs are zeroed, so the value is never used.

    Consequence: the output at position ``i`` depends on the items at positions
    ``<= i`` and on the timestamps at positions ``<= i + 1``. The tests check
    exactly this form of causality.

Normalisation ``n``
    The reference divides by ``n = `` the padded length of its attention mask,
    which it always builds at the full ``max_seq_len`` (plus the target slot),
    so in effect ``n`` is a constant. We default to the same constant
    (``attn_norm="max_seq_len"``), which also makes the outputs independent of
    how much right padding a batch has. ``attn_norm="length"`` divides each row
    by its number of real items instead (still padding invariant, and still
    causal in the items, but it tells every position how long the row is).

Masks
    ``mask`` (``(B, T, T)`` or ``(1, T, T)`` bool, True = query may attend to
    key) replaces the causal mask when given, for interleaved sequences; key
    padding from ``lengths`` is applied on top of it in every case.

One config for every model
    :class:`BackboneConfig` holds the fields all model configs share (the item
    count and the backbone's shape); :class:`cobra.models.ModelConfig`,
    :class:`cobra.cobra_model.CobraConfig` and :class:`cobra.tiger.TigerConfig`
    extend it, and :func:`build_hstu` is the one place an :class:`HSTU` is built
    from a config.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from cobra.config import check_model_shape, require_choice

TIME_BUCKET_BASE = 0.301
NUM_TIME_BUCKETS = 128
ATTN_NORMS = ("max_seq_len", "length")


def time_bucket(dt_seconds: torch.Tensor, num_buckets: int = NUM_TIME_BUCKETS) -> torch.Tensor:
    """Bucket time gaps on a log scale: ``clamp(floor(ln(max(|dt|, 1)) / 0.301), 0, num_buckets)``.

    Args:
        dt_seconds: any shape, int or float; time gaps in seconds (sign ignored).
        num_buckets: largest bucket index (the table has ``num_buckets + 1`` rows).

    Returns:
        Same shape, int64, values in ``[0, num_buckets]``. Gaps of 0 or 1 s are bucket 0,
        each bucket is ``e^0.301 ~ 1.35`` times wider than the previous one.
    """
    dt = dt_seconds.to(torch.float64).abs().clamp(min=1.0)
    return torch.floor(torch.log(dt) / TIME_BUCKET_BASE).clamp(0, num_buckets).to(torch.int64)


def valid_mask(lengths: torch.Tensor, seq_len: int) -> torch.Tensor:
    """Real (non-padding) positions of a right-padded batch.

    Args:
        lengths: (B,) int64 number of real items per row.
        seq_len: padded length ``T``.

    Returns:
        (B, T) bool, True where the position holds a real item.
    """
    positions = torch.arange(seq_len, device=lengths.device)  # (T,)
    return positions.unsqueeze(0) < lengths.unsqueeze(1)  # (B, T)


def next_timestamps(
    timestamps: torch.Tensor, lengths: torch.Tensor, last: torch.Tensor | None = None
) -> torch.Tensor:
    """Query time of every position: the timestamp of the next item (see the module docstring).

    Args:
        timestamps: (B, T) int64 seconds, right-padded.
        lengths: (B,) int64 number of real items per row.
        last: optional (B,) int64 query time of the last real position (e.g. the
            request time or the target's timestamp); default: that position's own timestamp.

    Returns:
        (B, T) int64: ``timestamps[:, i + 1]`` for ``i < length - 1``, ``last`` at
        ``length - 1`` and on the padding.
    """
    B, T = timestamps.shape
    last_idx = (lengths - 1).clamp(min=0).unsqueeze(1)  # (B, 1)
    if last is None:
        last = timestamps.gather(1, last_idx).squeeze(1)  # (B,)
    shifted = torch.cat([timestamps[:, 1:], timestamps[:, -1:]], dim=1)  # (B, T)
    inner = valid_mask(lengths - 1, T)  # (B, T) positions 0..length-2
    return torch.where(inner, shifted, last.to(timestamps.dtype).unsqueeze(1))  # (B, T)


def request_times(config: BackboneConfig, batch: Any) -> torch.Tensor | None:
    """(B,) int64 query time of each row's last position: ``batch.query_time`` when ``config.request_time``
    is on and the batch has one, else None (the last event's own time; see the module docstring)."""
    return getattr(batch, "query_time", None) if config.request_time else None


def causal_mask(seq_len: int, device: torch.device | None = None) -> torch.Tensor:
    """(1, T, T) bool lower-triangular mask, True where query ``i`` may attend key ``j <= i``."""
    return torch.ones(seq_len, seq_len, dtype=torch.bool, device=device).tril().unsqueeze(0)


def allowed_attention(
    lengths: torch.Tensor, seq_len: int, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Combine the causal (or explicit) mask with key padding.

    Args:
        lengths: (B,) int64.
        seq_len: ``T``.
        mask: optional (B, T, T) or (1, T, T) bool, True = may attend; replaces the causal mask.

    Returns:
        (B, T, T) bool, True where query ``i`` may attend key ``j``.
    """
    if mask is None:
        mask = causal_mask(seq_len, lengths.device)  # (1, T, T)
    elif mask.dim() != 3 or mask.shape[-2:] != (seq_len, seq_len) or mask.dtype != torch.bool:
        raise ValueError(
            f"attention mask must be a bool tensor of shape (B, {seq_len}, {seq_len}) or "
            f"(1, {seq_len}, {seq_len}); got {tuple(mask.shape)} {mask.dtype}"
        )
    keys = valid_mask(lengths, seq_len).unsqueeze(1)  # (B, 1, T)
    return mask & keys  # (B, T, T)


def _lookup(weight: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``weight[index]`` for a 1-D table: (R,) float, (...) int64 -> (...) float.

    On CUDA it is an embedding lookup, whose backward pass is a sorted segment sum. Plain indexing
    backpropagates through ``index_put_(accumulate=True)``, which on CUDA adds the ``B * T * T``
    gradients of a table with ~130 rows almost one by one: 98% of an HSTU training step's GPU time
    at ``B = 128, T = 200`` (``torch.profiler`` on an H100; ``bench speed`` shows the gain). On CPU
    plain indexing is as fast and keeps the summation order the book's CPU results were made with.
    """
    if weight.is_cuda:
        return F.embedding(index, weight.unsqueeze(1)).squeeze(-1)
    return weight[index]


class RelativeBias(nn.Module):
    """Learned attention bias over relative position and bucketed time gap.

    ``bias[b, i, j] = w_pos[clip(j - i)] + w_time[time_bucket(query_time[b, i] - timestamps[b, j])]``
    with ``j - i`` clipped to ``[-(max_seq_len - 1), max_seq_len - 1]``. The bias is shared by
    all heads of a block; each block owns its own ``RelativeBias``.

    Args:
        max_seq_len: longest sequence the block sees (sets the position table, ``2 * max_seq_len - 1``).
        num_buckets: largest time bucket (time table has ``num_buckets + 1`` rows).
        use_position: include the relative-position term.
        use_time: include the time term.
    """

    def __init__(
        self,
        max_seq_len: int,
        num_buckets: int = NUM_TIME_BUCKETS,
        use_position: bool = True,
        use_time: bool = True,
    ) -> None:
        super().__init__()
        self.max_seq_len = max_seq_len
        self.num_buckets = num_buckets
        self.use_position = use_position
        self.use_time = use_time
        self.pos_weight = nn.Parameter(torch.empty(2 * max_seq_len - 1).normal_(0.0, 0.02))
        self.time_weight = nn.Parameter(torch.empty(num_buckets + 1).normal_(0.0, 0.02))

    def position_bias(self, seq_len: int) -> torch.Tensor:
        """(1, T, T) float: ``w_pos[clip(j - i) + max_seq_len - 1]``."""
        pos = torch.arange(seq_len, device=self.pos_weight.device)  # (T,)
        rel = (pos.unsqueeze(0) - pos.unsqueeze(1)).clamp(-(self.max_seq_len - 1), self.max_seq_len - 1)
        return _lookup(self.pos_weight, rel + self.max_seq_len - 1).unsqueeze(0)  # (1, T, T)

    def time_buckets(self, timestamps: torch.Tensor, query_timestamps: torch.Tensor) -> torch.Tensor:
        """(B, T, T) int64 bucket of ``query_timestamps[:, i] - timestamps[:, j]``."""
        dt = query_timestamps.unsqueeze(2) - timestamps.unsqueeze(1)  # (B, T, T)
        return time_bucket(dt, self.num_buckets)

    def forward(
        self,
        timestamps: torch.Tensor,
        lengths: torch.Tensor,
        query_timestamps: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Bias to add to ``q k^T``.

        Args:
            timestamps: (B, T) int64 seconds of the key items.
            lengths: (B,) int64 real items per row (used for the default query times).
            query_timestamps: optional (B, T) int64 query time per position; default
                :func:`next_timestamps` ``(timestamps, lengths)``.

        Returns:
            (B, T, T) float32 (``(1, T, T)`` when only the position term is used).
        """
        B, T = timestamps.shape
        if T > self.max_seq_len:
            raise ValueError(
                f"sequence length {T} exceeds max_seq_len={self.max_seq_len} of the relative bias; "
                "build the model with a larger max_seq_len"
            )
        bias = torch.zeros(1, T, T, device=self.pos_weight.device)  # (1, T, T)
        if self.use_position:
            bias = bias + self.position_bias(T)
        if self.use_time:
            if query_timestamps is None:
                query_timestamps = next_timestamps(timestamps, lengths)
            bias = bias + _lookup(self.time_weight, self.time_buckets(timestamps, query_timestamps))  # (B, T, T)
        return bias


class HSTUBlock(nn.Module):
    """One HSTU layer (see the module docstring for the equations).

    Args:
        dim: model dim ``D``.
        num_heads: heads ``H``.
        attention_dim: per-head width of ``q`` and ``k`` (default ``D // H``).
        linear_dim: per-head width of ``u`` and ``v`` (default ``D // H``).
        dropout: dropout before the output projection.
        max_seq_len: longest sequence; sets the relative bias and the default ``n``.
        num_buckets: largest time bucket.
        attn_norm: ``"max_seq_len"`` (divide by the constant ``max_seq_len``, as the
            reference) or ``"length"`` (divide each row by its number of real items).
        use_position_bias / use_time_bias: switch the bias terms (for ablations).
        eps: layer-norm epsilon.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int = 1,
        attention_dim: int | None = None,
        linear_dim: int | None = None,
        dropout: float = 0.2,
        max_seq_len: int = 200,
        num_buckets: int = NUM_TIME_BUCKETS,
        attn_norm: str = "max_seq_len",
        use_position_bias: bool = True,
        use_time_bias: bool = True,
        eps: float = 1e-6,
    ) -> None:
        super().__init__()
        if attn_norm not in ATTN_NORMS:
            raise ValueError(f"unknown attn_norm {attn_norm!r}; choose one of {ATTN_NORMS}")
        self.dim = dim
        self.num_heads = num_heads
        self.attention_dim = attention_dim or dim // num_heads
        self.linear_dim = linear_dim or dim // num_heads
        self.max_seq_len = max_seq_len
        self.attn_norm = attn_norm
        self.eps = eps
        widths = [self.linear_dim * num_heads] * 2 + [self.attention_dim * num_heads] * 2
        self.widths = widths  # u, v, q, k
        self.uvqk = nn.Linear(dim, sum(widths), bias=False)
        nn.init.normal_(self.uvqk.weight, 0.0, 0.02)
        self.out = nn.Linear(self.linear_dim * num_heads, dim)
        nn.init.xavier_uniform_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.dropout = nn.Dropout(dropout)
        self.rel_bias = RelativeBias(max_seq_len, num_buckets, use_position_bias, use_time_bias)

    def forward(
        self,
        x: torch.Tensor,
        timestamps: torch.Tensor,
        lengths: torch.Tensor,
        allowed: torch.Tensor,
        query_timestamps: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Apply the block.

        Args:
            x: (B, T, D) float hidden states.
            timestamps: (B, T) int64 seconds.
            lengths: (B,) int64 real items per row.
            allowed: (B, T, T) bool, True where query ``i`` may attend key ``j``
                (from :func:`allowed_attention`).
            query_timestamps: optional (B, T) int64 query times (see the module docstring).

        Returns:
            (B, T, D) float.
        """
        B, T, _ = x.shape
        H = self.num_heads
        normed = F.layer_norm(x, (self.dim,), eps=self.eps)  # (B, T, D)
        u, v, q, k = torch.split(F.silu(self.uvqk(normed)), self.widths, dim=-1)
        q = q.view(B, T, H, self.attention_dim)
        k = k.view(B, T, H, self.attention_dim)
        v = v.view(B, T, H, self.linear_dim)
        scores = torch.einsum("bihd,bjhd->bhij", q, k)  # (B, H, T, T)
        scores = scores + self.rel_bias(timestamps, lengths, query_timestamps).unsqueeze(1).to(scores.dtype)
        if self.attn_norm == "max_seq_len":
            n = float(self.max_seq_len)
            attn = F.silu(scores) / n  # (B, H, T, T)
        else:
            n_rows = lengths.clamp(min=1).to(scores.dtype).view(B, 1, 1, 1)
            attn = F.silu(scores) / n_rows  # (B, H, T, T)
        attn = attn * allowed.unsqueeze(1).to(attn.dtype)  # (B, H, T, T)
        a = torch.einsum("bhij,bjhd->bihd", attn, v).reshape(B, T, H * self.linear_dim)  # (B, T, H*dv)
        a = F.layer_norm(a, (H * self.linear_dim,), eps=self.eps)
        return x + self.out(self.dropout(u * a))  # (B, T, D)


class HSTU(nn.Module):
    """HSTU encoder: input scaling and positions, then a stack of :class:`HSTUBlock`.

    As in the reference, the input is ``x * sqrt(D) + pos_emb(position)`` (learned
    absolute positions, can be switched off) followed by dropout; padding positions
    are zeroed at the input and at the output.

    Args:
        dim: model dim ``D``.
        num_blocks: number of blocks.
        num_heads: heads per block.
        max_seq_len: longest ``T`` accepted.
        dropout: input and block dropout.
        attention_dim / linear_dim: per-head widths (default ``D // H``).
        num_buckets: largest time bucket (128 in the reference).
        attn_norm: see :class:`HSTUBlock`.
        abs_pos_emb: add learned absolute positional embeddings to the input.
        use_position_bias / use_time_bias: switch the relative bias terms.
    """

    def __init__(
        self,
        dim: int,
        num_blocks: int = 2,
        num_heads: int = 1,
        max_seq_len: int = 200,
        dropout: float = 0.2,
        attention_dim: int | None = None,
        linear_dim: int | None = None,
        num_buckets: int = NUM_TIME_BUCKETS,
        attn_norm: str = "max_seq_len",
        abs_pos_emb: bool = True,
        use_position_bias: bool = True,
        use_time_bias: bool = True,
    ) -> None:
        super().__init__()
        self.dim = dim
        self.max_seq_len = max_seq_len
        self.pos_emb = nn.Embedding(max_seq_len, dim) if abs_pos_emb else None
        if self.pos_emb is not None:
            nn.init.trunc_normal_(self.pos_emb.weight, std=math.sqrt(1.0 / dim))
        self.input_dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            HSTUBlock(
                dim, num_heads, attention_dim, linear_dim, dropout, max_seq_len, num_buckets,
                attn_norm, use_position_bias, use_time_bias,
            )
            for _ in range(num_blocks)
        )

    def forward(
        self,
        x: torch.Tensor,
        timestamps: torch.Tensor,
        lengths: torch.Tensor,
        mask: torch.Tensor | None = None,
        query_timestamps: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Encode a right-padded batch.

        Args:
            x: (B, T, D) float item embeddings (padding rows may hold anything).
            timestamps: (B, T) int64 seconds.
            lengths: (B,) int64 real items per row.
            mask: optional (B, T, T) or (1, T, T) bool, True = may attend; replaces the causal mask.
            query_timestamps: optional (B, T) int64 query times; default :func:`next_timestamps`.

        Returns:
            (B, T, D) float hidden states, zero at padding positions.
        """
        B, T, D = x.shape
        if T > self.max_seq_len:
            raise ValueError(
                f"sequence length {T} exceeds max_seq_len={self.max_seq_len}; "
                "truncate the batch or build the model with a larger max_seq_len"
            )
        valid = valid_mask(lengths, T).unsqueeze(-1).to(x.dtype)  # (B, T, 1)
        h = x * math.sqrt(self.dim)  # (B, T, D)
        if self.pos_emb is not None:
            h = h + self.pos_emb(torch.arange(T, device=x.device)).unsqueeze(0)
        h = self.input_dropout(h) * valid
        allowed = allowed_attention(lengths, T, mask)  # (B, T, T)
        if query_timestamps is None:
            query_timestamps = next_timestamps(timestamps, lengths)
        for block in self.blocks:
            h = block(h, timestamps, lengths, allowed, query_timestamps) * valid  # (B, T, D)
        return h


# ------------------------------------------------------------------------------------ the shared config
_Config = TypeVar("_Config", bound="BackboneConfig")


@dataclass(frozen=True)
class BackboneConfig:
    """What every model config shares: the catalogue size and the backbone's shape.

    :class:`cobra.models.ModelConfig` (HSTU / SASRec), :class:`cobra.cobra_model.CobraConfig` and
    :class:`cobra.tiger.TigerConfig` extend it with their own fields, so a run's ``model`` section stays one
    flat mapping (``model.dim``, ``--set model.num_blocks=4``); :func:`build_hstu` builds the HSTU backbone of
    any of them. SASRec reads ``dim`` .. ``dropout`` and ignores the HSTU-only fields below them.

    Attributes:
        num_items: ``N``, items in the catalogue (ids ``1..N``, 0 is padding). Presets hold a placeholder;
            the builder sets the dataset's (:func:`cobra.runs.build_model` with ``num_items=``).
        dim: model dim ``D`` (divisible by ``num_heads``).
        num_blocks: backbone blocks.
        num_heads: heads ``H`` per block.
        max_seq_len: longest history ``T`` in items; the backbone's length in tokens may be longer
            (``build_hstu(seq_len=...)``: COBRA interleaves two tokens per item, TIGER adds code tokens).
        dropout: dropout rate, in [0, 1).
        attention_dim: HSTU per-head q/k width (default ``D // H``).
        linear_dim: HSTU per-head u/v width (default ``D // H``).
        num_time_buckets: HSTU largest time bucket (:func:`time_bucket`).
        attn_norm: HSTU attention normalisation ``n``: ``max_seq_len`` or ``length`` (see the module docstring).
        use_position_bias: HSTU relative position term.
        use_time_bias: HSTU relative time term.
        request_time: the last position's query time is the request's time (``Batch.query_time``: the
            target's timestamp), as in the reference; False: the last event's own time (see the module
            docstring). Batches without ``query_time`` always use the last event's time.
    """

    num_items: int
    dim: int = 64
    num_blocks: int = 2
    num_heads: int = 1
    max_seq_len: int = 50
    dropout: float = 0.2
    attention_dim: int | None = None
    linear_dim: int | None = None
    num_time_buckets: int = NUM_TIME_BUCKETS
    attn_norm: str = "max_seq_len"
    use_position_bias: bool = True
    use_time_bias: bool = True
    request_time: bool = True

    def __post_init__(self) -> None:
        require_choice(self, "attn_norm", ATTN_NORMS)
        check_model_shape(self, ("num_items", "dim", "num_blocks", "num_heads", "max_seq_len"))

    def replace(self: _Config, **changes: Any) -> _Config:
        """A copy with some fields changed (checked again)."""
        return dataclasses.replace(self, **changes)


def build_hstu(config: BackboneConfig, seq_len: int | None = None, abs_pos_emb: bool = True) -> HSTU:
    """The :class:`HSTU` backbone of a model config.

    Args:
        config: any :class:`BackboneConfig` (its ``dim`` .. ``use_time_bias`` fields).
        seq_len: the backbone's longest sequence in tokens (default ``config.max_seq_len``: one token per item).
        abs_pos_emb: learned absolute positions at the input (TIGER adds its own positions instead).

    Returns:
        An :class:`HSTU` with fresh weights, drawn from the global torch RNG.
    """
    return HSTU(
        dim=config.dim,
        num_blocks=config.num_blocks,
        num_heads=config.num_heads,
        max_seq_len=config.max_seq_len if seq_len is None else seq_len,
        dropout=config.dropout,
        attention_dim=config.attention_dim,
        linear_dim=config.linear_dim,
        num_buckets=config.num_time_buckets,
        attn_norm=config.attn_norm,
        abs_pos_emb=abs_pos_emb,
        use_position_bias=config.use_position_bias,
        use_time_bias=config.use_time_bias,
    )
