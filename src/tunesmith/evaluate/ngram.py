"""The n-gram baseline: an interpolated token n-gram with Witten-Bell (PPM method C) escape.

It reads the same token sequences as the LSTM (``<s>`` body ``</s>``) and gives a full
next-token distribution at every target step, so :mod:`tunesmith.likelihood` scores it with the
very definitions used for the model. Its order is the one with the lowest validation loss.

Witten-Bell interpolation, for a context ``h`` seen ``c(h)`` times with ``T(h)`` distinct
followers::

    p_k(w | h) = (c(h, w) + T(h) · p_{k−1}(w | shorter h)) / (c(h) + T(h))

and ``p_{k−1}`` alone when ``h`` never occurred. ``T(h)`` is the escape count: the more kinds
of token have followed ``h``, the more weight goes to the shorter context. The order-0 base is
the unigram interpolated with a uniform distribution over every token a song can contain.

Counts live in sorted arrays of 64-bit context hashes (FNV-1a over token ids), so fitting and
scoring are vectorised numpy: no Python loop over tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tunesmith.encoding import Vocabulary

FNV_PRIME = np.uint64(0x100000001B3)
FNV_OFFSET = np.uint64(0xCBF29CE484222325)


@dataclass
class NGramConfig:
    """The baseline's settings."""

    max_order: int = 16  # longest n-gram tried (context of max_order − 1 tokens)
    order: int = 0  # fixed order; 0 = choose the best on the validation sequences


def _mix(codes: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """One FNV-1a step: fold ``tokens`` into the running hashes ``codes``."""
    with np.errstate(over="ignore"):
        return (codes ^ (tokens.astype(np.uint64) + np.uint64(1))) * FNV_PRIME


def _frame(sequences: Sequence[Sequence[int]], vocab: Vocabulary) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Concatenate ``<s>`` ids ``</s>`` songs: (ids, index within its song, is-a-target mask)."""
    parts = [np.asarray([vocab.start, *seq, vocab.end], dtype=np.int64) for seq in sequences]
    ids = np.concatenate(parts) if parts else np.zeros(0, np.int64)
    within = np.concatenate([np.arange(len(p)) for p in parts]) if parts else np.zeros(0, np.int64)
    return ids, within, within > 0


class NGramModel:
    """Interpolated Witten-Bell n-gram over token ids; ``fit`` once, then score any sequences."""

    def __init__(self, vocab: Vocabulary, max_order: int = 16):
        if max_order < 1:
            raise ValueError(f"max_order must be >= 1, got {max_order!r}")
        self.vocab = vocab
        self.max_order = max_order
        self.order = max_order
        # Tokens a song can contain; <pad> and <s> are never targets, so they get no mass.
        self.support = np.array([i for i in range(len(vocab)) if i not in (vocab.pad, vocab.start)])
        # Per context length k: sorted context hashes with c(h) and T(h); sorted (h, w) hashes with c(h, w).
        self.contexts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.pairs: list[tuple[np.ndarray, np.ndarray]] = []

    def _context_codes(self, ids: np.ndarray, within: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """For k = 0 .. max_order − 1: hash of the k tokens before each position, and where it exists."""
        codes = np.full(len(ids), FNV_OFFSET, dtype=np.uint64)
        levels = [(codes, np.ones(len(ids), bool))]
        for k in range(1, self.max_order):
            previous = np.concatenate([np.zeros(k, np.int64), ids[:-k]]) if k <= len(ids) else np.zeros(len(ids), np.int64)
            codes = _mix(codes, previous)
            levels.append((codes, within >= k))  # the context must lie inside the song
        return levels

    def fit(self, sequences: Sequence[Sequence[int]]) -> NGramModel:
        """Count every n-gram of the training sequences (body token ids, without ``<s>``/``</s>``)."""
        ids, within, is_target = _frame(sequences, self.vocab)
        self.contexts, self.pairs = [], []
        for codes, exists in self._context_codes(ids, within):
            keep = exists & is_target
            pair_codes, first, pair_counts = np.unique(_mix(codes[keep], ids[keep]), return_index=True,
                                                       return_counts=True)  # fmt: skip
            context_codes, context_counts = np.unique(codes[keep], return_counts=True)
            # T(h), the distinct followers of h: how many distinct (h, w) pairs have context h.
            _, types = np.unique(codes[keep][first], return_counts=True)
            self.contexts.append((context_codes, context_counts.astype(float), types.astype(float)))
            self.pairs.append((pair_codes, pair_counts.astype(float)))
        unigram = np.zeros(len(self.vocab))
        np.add.at(unigram, ids[is_target], 1.0)
        self.unigram = unigram
        return self

    @staticmethod
    def _lookup(keys: np.ndarray, values: np.ndarray, queries: np.ndarray) -> np.ndarray:
        index = np.clip(np.searchsorted(keys, queries), 0, max(len(keys) - 1, 0))
        found = (keys[index] == queries) if len(keys) else np.zeros(queries.shape, bool)
        return np.where(found, values[index] if len(keys) else 0.0, 0.0)

    def _base(self) -> np.ndarray:
        """Order-1 distribution: unigram counts interpolated with uniform over the support."""
        uniform = np.zeros(len(self.vocab))
        uniform[self.support] = 1.0 / len(self.support)
        types = float((self.unigram > 0).sum())
        if not types:  # nothing was counted: the uniform distribution alone
            return uniform
        return (self.unigram + types * uniform) / (self.unigram.sum() + types)

    def _chain(self, sequences: Sequence[Sequence[int]], full: bool, order: int):
        """Probabilities at each target step of the target alone ([N, 1]) or, when ``full``, of
        every token ([N, V]), for orders 1..order (yielded lowest first), with the target ids."""
        ids, within, is_target = _frame(sequences, self.vocab)
        levels = self._context_codes(ids, within)
        targets = ids[is_target]
        every = np.broadcast_to(np.arange(len(self.vocab)), (len(targets), len(self.vocab)))
        words = every if full else targets[:, None]
        prob = self._base()[words]
        yield prob, targets
        for k in range(1, order):
            codes, exists = levels[k][0][is_target], levels[k][1][is_target]
            context_codes, context_counts, types = self.contexts[k]
            pair_codes, pair_counts = self.pairs[k]
            count = self._lookup(context_codes, context_counts, codes)[:, None]
            escape = self._lookup(context_codes, types, codes)[:, None]
            joint = self._lookup(pair_codes, pair_counts, _mix(codes[:, None], words))
            seen = (exists & (count[:, 0] > 0))[:, None]
            prob = np.where(seen, (joint + escape * prob) / np.maximum(count + escape, 1.0), prob)
            yield prob, targets

    def order_losses(self, sequences: Sequence[Sequence[int]]) -> list[float]:
        """Mean nats per target of each order 1..max_order on ``sequences``."""
        losses = []
        for prob, _ in self._chain(sequences, False, self.max_order):
            losses.append(float(-np.log(np.maximum(prob[:, 0], 1e-300)).mean()))
        return losses

    def choose_order(self, sequences: Sequence[Sequence[int]]) -> int:
        """Set and return the order with the lowest loss on ``sequences`` (validation songs)."""
        losses = self.order_losses(sequences)
        self.order = int(np.argmin(losses)) + 1
        return self.order

    def log_probs(self, sequence: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Full next-token distributions of one song, as the model's would be scored.

        Parameters
        ----------
        sequence : sequence of int
            Body token ids (no ``<s>``/``</s>``).

        Returns
        -------
        (ndarray [T, V], ndarray [T])
            Natural-log probabilities (rows sum to 1; ``<pad>``/``<s>`` get −inf) and the target
            ids (the body then ``</s>``), T = len(sequence) + 1.
        """
        *_, (prob, targets) = self._chain([sequence], True, self.order)
        with np.errstate(divide="ignore"):
            return np.log(prob), targets
