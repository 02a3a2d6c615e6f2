"""Per-step controls: small objects the decoding loop asks, at every free step, which tokens may
come next (a mask) and how to tilt the model's scores (a logit bias).

A control sees a :class:`StepContext` — the step, where it falls in the bar, the token chosen at
the step before — and answers with tensors over the vocabulary. Everything is in the MODEL's key
(C major / A minor): the plan converts the user's output-key constraints once, at the boundary.

Stateless rules (scale, range, the structure of a melody) precompute their masks in ``start`` so
a step costs one lookup; stateful controls (the originality guard) follow the chosen tokens
through ``advance`` and beam search's row shuffles through ``reorder``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch

from tunesmith.encoding import Vocabulary

MOTIF_ORDER = 8  # tokens of context a motif echo looks up (two beats of 4/4 in sixteenths)


@dataclass(slots=True)
class StepContext:
    """What a control may look at when the loop chooses the token of one step.

    ``step`` indexes the melody body (0 = the first token after ``<s>``); ``position`` is the step
    within its bar, ``bar`` the bar index (0 = the bar holding step 0, a pickup included),
    ``at_bar_line`` whether the step starts a bar (a melody may end just before it). ``previous``
    holds each row's token id at ``step - 1`` (``<s>`` at step 0).
    """

    step: int
    position: int
    bar: int
    at_bar_line: bool
    total_steps: int
    rows: int
    device: torch.device
    vocab: Vocabulary
    previous: torch.Tensor


@runtime_checkable
class Control(Protocol):
    """One rule the decoding loop applies at every free step (see the module docstring)."""

    def start(self, rows: int, prefix: list[int]) -> None:
        """A new decoding run of ``rows`` rows; ``prefix`` are the model-key token ids fed after
        ``<s>`` before the first free step (primer or kept bars), the same for every row."""

    def allowed(self, ctx: StepContext) -> torch.Tensor | None:
        """Bool ``[rows, V]`` (or ``[V]``), True = allowed; None = no restriction."""

    def bias(self, ctx: StepContext) -> torch.Tensor | None:
        """Float ``[rows, V]`` (or ``[V]``) added to the logits; None = none."""

    def advance(self, chosen: torch.Tensor) -> None:
        """Token ids ``[rows]`` taken at this step (fixed tokens too)."""

    def reorder(self, index: torch.Tensor) -> None:
        """Beam search kept rows ``index``: row ``i`` is now what row ``index[i]`` was."""


def control_scores(controls, ctx: StepContext, logits: torch.Tensor) -> torch.Tensor:
    """The scores ``[rows, V]`` after every control's bias and mask (``-inf`` where not allowed).

    Masks combine by AND, in order. A control with ``yields = True`` (the copy guard: it keeps
    originality, not the melody's grammar or form) steps aside for a row where its mask together
    with the others would leave that row no token at all — e.g. the guard allows only a hold at a
    step where the form starts a phrase, which a hold may not do. The other masks always hold."""
    hard = soft = None
    scores = logits
    for control in controls:
        mask = control.allowed(ctx)
        if mask is not None:
            if getattr(control, "yields", False):
                soft = mask if soft is None else soft & mask
            else:
                hard = mask if hard is None else hard & mask
        bias = control.bias(ctx)
        if bias is not None:
            scores = scores + bias
    allowed = hard
    if soft is not None:
        both = soft if hard is None else soft & hard
        stuck = ~both.any(-1, keepdim=True)  # rows the yielding masks would leave with nothing
        allowed = torch.where(stuck, hard if hard is not None else True, both) if bool(stuck.any()) else both
    if allowed is not None:
        scores = torch.where(allowed, scores, _minus_infinity(scores.device))
    return scores


_MINUS_INFINITY: dict[torch.device, torch.Tensor] = {}


def _minus_infinity(device: torch.device) -> torch.Tensor:
    """``-inf`` as a 0-d float32 tensor on ``device`` (``torch.where`` takes it as it takes the
    Python float, the scores' dtype, at a third of the cost of wrapping a float at every step)."""
    value = _MINUS_INFINITY.get(device)
    if value is None:
        value = _MINUS_INFINITY[device] = torch.tensor(float("-inf"), device=device)
    return value


class StaticControl:
    """Base of controls that need no state: every hook is a no-op until overridden."""

    def start(self, rows: int, prefix: list[int]) -> None:
        pass

    def allowed(self, ctx: StepContext) -> torch.Tensor | None:
        return None

    def bias(self, ctx: StepContext) -> torch.Tensor | None:
        return None

    def advance(self, chosen: torch.Tensor) -> None:
        pass

    def reorder(self, index: torch.Tensor) -> None:
        pass


class TokenMask(StaticControl):
    """The same allowed set at every step (``--scale``, ``--range``): a bool ``[V]`` mask."""

    def __init__(self, mask: torch.Tensor, described: str = ""):
        self.mask, self.described = mask, described
        self._on: torch.Tensor | None = None

    def start(self, rows: int, prefix: list[int]) -> None:
        self._on = None

    def allowed(self, ctx: StepContext) -> torch.Tensor:
        if self._on is None or self._on.device != ctx.device:
            self._on = self.mask.to(ctx.device)
        return self._on


class Structure:
    """The rules every melody follows: never ``<pad>``/``<s>``; no ``_`` right after ``<s>``;
    ``</s>`` only once the melody holds a note, only at a bar line, and only from
    ``end_from`` on (None = never: the melody runs the whole length).

    Until every row holds a note the mask is built per row; after that it depends only on
    whether the step starts a bar, so it is one of two precomputed tensors.
    """

    def __init__(self, end_from: int | None = 0):
        self.end_from = end_from
        self._has_note: torch.Tensor | None = None
        self._settled = False
        self._steady: dict[tuple[bool, bool], torch.Tensor] = {}

    def start(self, rows: int, prefix: list[int]) -> None:
        self._rows, self._prefix = rows, list(prefix)
        self._has_note = None
        self._settled = False
        self._steady = {}

    def _setup(self, ctx: StepContext) -> None:
        vocab = ctx.vocab
        self._is_pitch = torch.zeros(len(vocab), dtype=torch.bool, device=ctx.device)
        self._is_pitch[vocab.pitch_ids] = True
        has = bool(self._is_pitch[self._prefix].any()) if self._prefix else False
        self._has_note = torch.full((ctx.rows,), has, dtype=torch.bool, device=ctx.device)
        for at_bar in (False, True):
            for may_end in (False, True):
                mask = torch.ones(len(vocab), dtype=torch.bool, device=ctx.device)
                mask[[vocab.pad, vocab.start]] = False
                mask[vocab.end] = at_bar and may_end
                self._steady[at_bar, may_end] = mask

    def allowed(self, ctx: StepContext) -> torch.Tensor:
        if self._has_note is None:
            self._setup(ctx)
        may_end = self.end_from is not None and ctx.step >= self.end_from
        self._settled = self._settled or bool(self._has_note.all())
        if self._settled:
            return self._steady[ctx.at_bar_line, may_end]
        return structure_mask(ctx.vocab, ctx.previous, self._has_note, ctx.at_bar_line and may_end)

    def bias(self, ctx: StepContext) -> None:
        return None

    def advance(self, chosen: torch.Tensor) -> None:
        if self._has_note is not None and not self._settled:
            self._has_note = self._has_note | self._is_pitch[chosen]

    def reorder(self, index: torch.Tensor) -> None:
        if self._has_note is not None:
            self._has_note = self._has_note[index]


def structure_mask(vocab: Vocabulary, previous: torch.Tensor, has_note: torch.Tensor,
                   at_bar_line: bool = True) -> torch.Tensor:  # fmt: skip
    """The structure rules for one step, row by row (pure function).

    Parameters
    ----------
    vocab : Vocabulary
        The model's tokens.
    previous : torch.Tensor
        Token ids ``[B]`` of the step before the one being chosen.
    has_note : torch.Tensor
        Bool ``[B]``: the melody already holds at least one pitched note.
    at_bar_line : bool
        The step being chosen starts a bar (and the melody may end there).

    Returns
    -------
    torch.Tensor
        Bool ``[B, V]``, True where allowed.
    """
    mask = torch.ones(previous.shape[0], len(vocab), dtype=torch.bool, device=previous.device)
    mask[:, vocab.pad] = False
    mask[:, vocab.start] = False
    mask[:, vocab.end] = has_note & at_bar_line
    mask[:, vocab.hold] = previous != vocab.start
    return mask


def motif_continuations(history: list[int], order: int) -> dict[tuple[int, ...], tuple[int, ...]]:
    """What followed each run of ``order`` tokens in ``history`` (pure function).

    Parameters
    ----------
    history : list of int
        Token ids of one melody so far (pitches, holds and rests: a run of them is a fragment of
        melody with its rhythm).
    order : int
        Tokens in a run (the context a continuation is looked up by).

    Returns
    -------
    dict
        Run (a tuple of ``order`` ids) → the distinct ids that came right after it, in order of
        first appearance.
    """
    table: dict[tuple[int, ...], tuple[int, ...]] = {}
    for i in range(order, len(history)):
        key, token = tuple(history[i - order : i]), history[i]
        seen = table.get(key, ())
        if token not in seen:
            table[key] = seen + (token,)
    return table


class MotifEcho(StaticControl):
    """A melody's own fragments tend to go on as they went before: the motif memory of a folk tune.

    When the last ``order`` tokens (a fragment of melody with its rhythm) already occurred earlier
    in the same melody, every token that followed them then gets a logit bonus of ``strength``:
    a motif that comes back tends to come back whole, as in the corpus, where songs restate
    4-note figures (intervals and lengths) within and across phrases far more often than an
    LSTM sampled step by step does (a "cache" of the song itself, as in cache language models).
    The tables are per row (stated once in :func:`motif_continuations`); rests and holds count
    as tokens, so the echo keeps the rhythm. ``strength`` 0 is no bias at all. From step
    ``quiet_from`` on (the plan passes the melody's last bar) the echo is silent: the close is
    the cadence's (an echo there pulled melodies off the tonic: 68% tonic endings instead of 78%).
    """

    def __init__(self, order: int = MOTIF_ORDER, strength: float = 1.0, quiet_from: int | None = None):
        if order < 1:
            raise ValueError(f"a motif needs at least one token of context, got order {order!r}")
        self.order, self.strength, self.quiet_from = order, strength, quiet_from

    def start(self, rows: int, prefix: list[int]) -> None:
        table = motif_continuations(list(prefix), self.order)
        self.history = [list(prefix) for _ in range(rows)]
        self.tables = [dict(table) for _ in range(rows)]

    def bias(self, ctx: StepContext) -> torch.Tensor | None:
        if not self.strength or (self.quiet_from is not None and ctx.step >= self.quiet_from):
            return None
        order, hits = self.order, []
        for row, history in enumerate(self.history):
            if len(history) > order:
                following = self.tables[row].get(tuple(history[-order:]))
                if following:
                    hits += [(row, token) for token in following]
        if not hits:
            return None
        bias = torch.zeros(ctx.rows, len(ctx.vocab))
        rows, tokens = zip(*hits)
        bias[list(rows), list(tokens)] = self.strength
        return bias.to(ctx.device)

    def advance(self, chosen: torch.Tensor) -> None:
        order = self.order
        for row, token in enumerate(chosen.tolist()):
            history = self.history[row]
            if len(history) >= order:
                key = tuple(history[-order:])
                seen = self.tables[row].get(key, ())
                if token not in seen:
                    self.tables[row][key] = seen + (token,)
            history.append(token)

    def reorder(self, index: torch.Tensor) -> None:
        rows = index.tolist()
        self.history = [list(self.history[i]) for i in rows]
        self.tables = [dict(self.tables[i]) for i in rows]
