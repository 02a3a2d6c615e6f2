"""Row-wise controls: the plans' own controls merged over the rows of one pass (:mod:`rows`).

Each computes, for every row, what its plan's own control (:mod:`tunesmith.generate.controls`,
:class:`~tunesmith.generate.form.FormControl`) computes at that row's step, with the same
values, so a batched row decodes exactly as its plan alone. They read ``ctx.segments`` (each
plan's rows and step) and follow the loop's row shuffles through ``reorder``.
"""

from __future__ import annotations

import numpy as np
import torch

from tunesmith.generate.form import CONTRAST_BIAS, CONTRAST_FROM, CONTRAST_SHARE, FormControl


def as_numpy(values) -> np.ndarray:
    """``values`` (a tensor on any device, or already an array) as a NumPy array on the host."""
    if isinstance(values, np.ndarray):
        return values
    return values.numpy() if values.is_cpu else values.cpu().numpy()


def ending_steps(end_from: int | None, positions: list[int]) -> frozenset[int]:
    """The steps at which :class:`~tunesmith.generate.controls.Structure` lets a melody end
    (pure function): bar lines (``positions[step] == 0``) from ``end_from`` on; none for None."""
    if end_from is None:
        return frozenset()
    return frozenset(step for step in range(max(end_from, 0), len(positions)) if positions[step] == 0)


class RowStructure:
    """:class:`~tunesmith.generate.controls.Structure` row by row, with each plan's ``end_from``
    (a plan without a Structure control never ends early: it runs its length)."""

    def __init__(self, structures: list, sizes: list[int], plans: list, ids: list[int] | None = None):
        ids = list(range(len(plans))) if ids is None else ids  # the plans' numbers in ctx.segments
        self.ends = {i: ending_steps(s.end_from if s is not None else None, plan.positions)
                     for i, s, plan in zip(ids, structures, plans)}  # fmt: skip
        self.vocab = plans[0].vocab
        vocab = self.vocab
        self.is_pitch = np.zeros(len(vocab), bool)
        self.is_pitch[vocab.pitch_ids] = True
        has = [bool(self.is_pitch[plan.prefix].any()) if plan.prefix else False for plan in plans]
        self.has_note = np.repeat(np.array(has, bool), sizes)
        self.settled = False
        self.base = torch.ones(len(vocab), dtype=torch.bool)
        self.base[[vocab.pad, vocab.start]] = False
        self.no_end = self.base.clone()
        self.no_end[vocab.end] = False

    def allowed(self, ctx) -> torch.Tensor:
        vocab = self.vocab
        ends = [(step in self.ends[p], b - a) for p, a, b, step, _ in ctx.segments]
        self.settled = self.settled or bool(self.has_note.all())
        if self.settled and not any(e for e, _ in ends):
            return self.no_end.to(ctx.device)
        at_end = torch.tensor([e for e, n in ends for _ in range(n)], device=ctx.device)
        mask = self.base.to(ctx.device).expand(ctx.rows, len(vocab)).clone()
        mask[:, vocab.end] = torch.from_numpy(self.has_note).to(ctx.device) & at_end
        mask[:, vocab.hold] = ctx.previous != vocab.start
        return mask

    def bias(self, ctx) -> None:
        return None

    def advance(self, chosen) -> None:
        if not self.settled:
            self.has_note = self.has_note | self.is_pitch[as_numpy(chosen)]

    def reorder(self, index) -> None:
        self.has_note = self.has_note[as_numpy(index)]

    def extend(self, other: RowStructure) -> None:
        """Append ``other``'s rows and plans (plans joining a running stream, :mod:`stream`)."""
        self.ends.update(other.ends)
        self.has_note = np.concatenate([self.has_note, other.has_note])
        self.settled = False

    def forget(self, ids: list[int]) -> None:
        """Plans ``ids`` left (their rows are already reordered away)."""
        for i in ids:
            self.ends.pop(i, None)


class RowMask:
    """The plans' ``--scale``/``--range``/instrument masks, row by row (all allowed for a plan without one)."""

    def __init__(self, masks: list, sizes: list[int], vocab_size: int | None = None):
        if vocab_size is None:
            vocab_size = next(m for m in masks if m is not None).mask.shape[0]
        per_plan = [m.mask if m is not None else torch.ones(vocab_size, dtype=torch.bool) for m in masks]
        self.mask = torch.stack([mask for mask, size in zip(per_plan, sizes) for _ in range(size)])

    def extend(self, other: RowMask) -> None:
        self.mask = torch.cat([self.mask, other.mask])

    def forget(self, ids: list[int]) -> None:
        pass

    def allowed(self, ctx) -> torch.Tensor:
        return self.mask.to(ctx.device)

    def bias(self, ctx) -> None:
        return None

    def advance(self, chosen: torch.Tensor) -> None:
        pass

    def reorder(self, index: torch.Tensor) -> None:
        self.mask = self.mask[index.cpu()]


class FormRows:
    """:class:`~tunesmith.generate.form.FormControl` row by row: each row follows its own plan's
    form (None = no form: zeros as inputs, no bias), its restatement lookback read from its own
    history. Computes, for every row, what the plan's FormControl computes (inputs, the no-hold
    rule at phrase starts, restatement, cadence, closing, ending and contrast biases).

    The tables and row state are NumPy arrays (a step's work is a few dozen operations on rows of
    a few dozen entries, where NumPy costs a microsecond and torch ten), and what a step reads of
    the per-plan tables is packed so that one lookup per table gives every row's (plan, step)
    cell (:meth:`_at`): whatever depends only on the plan and the step is computed when it joins.
    """

    # columns of the packed tables at (plan, step): integers, flags and biases
    _STATIC, _AT, _BLANK = slice(0, 3), 3, 4  # static form inputs; the restated step (0: none); input without one
    _INSIDE, _HAS, _BODY, _CLOSING, _IS_START, _FINAL, _FINAL_START = range(7)  # inside the form; restates a step; flags of FormControl
    _STRENGTH, _CADENCE = 0, 1  # the restatement bias, and the plan's cadence bias

    def __init__(self, forms: list[FormControl | None], sizes: list[int], prefixes: list[list[int]], vocab,
                 total_steps: int, ids: list[int] | None = None):  # fmt: skip
        ids = list(range(len(forms))) if ids is None else ids  # the plans' numbers in ctx.segments
        self.vocab = vocab
        count, size = len(forms), len(vocab)
        width = max([len(f.source) for f in forms if f is not None] + [total_steps + 1])
        self.hold, self.pad = vocab.ids(["_"])[0], vocab.pad
        self.cells = np.zeros((count, width, 5), np.int64)
        self.flags = np.zeros((count, width, 7), bool)
        self.biases = np.zeros((count, width, 2), np.float32)
        # a closing step's bias over the vocabulary: off or on the tonic (FormControl's sum, per plan)
        self.closing = np.zeros((count, 2, size), np.float32)
        self.is_tonic = np.zeros((count, size), np.int64)  # 1 on the tonic (the index of its closing bias)
        self.ending = np.zeros((count, size), np.float32)  # the last beat's penalty of other degrees and rests
        self.is_final = np.zeros((count, size), bool)  # the pitches a closing phrase may end on
        self.hold_penalty = np.zeros(count, np.float32)  # holding another degree into the last beat
        # contrast (FormControl._contrast): the step at the same offset in each earlier phrase, and the offset
        phrases = max([len(f.form.starts) for f in forms if f is not None] + [1])
        self.rivals = np.full((count, width, phrases), -1, np.int64)
        for p, f in enumerate(forms):
            if f is None:
                continue
            n = len(f.source)
            cells, flags, source = self.cells[p], self.flags[p], np.array(f.source, np.int64)
            cells[:n, self._STATIC], cells[:n, self._AT] = f.static.numpy(), source.clip(0)
            cells[:n, self._BLANK] = self.pad
            flags[:n, self._INSIDE], flags[:n, self._HAS] = True, source >= 0
            flags[:n, self._BODY], flags[:n, self._CLOSING] = f.body, f.closing
            flags[f.form.starts, self._IS_START] = True
            final = np.array(f.final, np.int64)
            flags[:n, self._FINAL], flags[:n, self._FINAL_START] = final > 0, final == 2
            self.ending[p], self.is_final[p] = f.ending.numpy(), f.is_final.numpy()
            self.hold_penalty[p] = -float(f.hold_off_final[self.hold])
            self.rivals[p, : f.rival_table.shape[0], : f.rival_table.shape[1]] = f.rival_table
            self.biases[p, :n, self._STRENGTH], self.biases[p, :n, self._CADENCE] = f.strength, f.cadence_bias
            tonic, hold_on_tonic = f.tonic.numpy(), f.hold_on_tonic.numpy()
            self.closing[p] = tonic + np.float32(0.0), tonic + hold_on_tonic
            self.is_tonic[p] = f.is_tonic.numpy()
        # python views for the per-step checks, by plan number
        self.starts = {i: set(f.form.starts[1:]) if f is not None else set() for i, f in zip(ids, forms)}
        self.active = {i: [bool(s or c or r) for s, c, r in zip(f.strength, f.closing, f.rivals)] if f is not None else []
                       for i, f in zip(ids, forms)}  # fmt: skip
        plan = np.repeat(np.arange(count), sizes)  # each row's table row
        self.plan = plan
        self.written = np.full((len(plan), width), self.pad, np.int64)  # each row's token per step
        self.sounded = np.full((len(plan), width), self.pad, np.int64)  # and the id sounding then
        self.pitched = np.zeros(len(plan), bool)  # a pitch since the current phrase began
        self.is_pitch = np.zeros(size, bool)
        self.is_pitch[vocab.pitch_ids] = True
        self.step = np.array([len(prefixes[p]) for p in plan], np.int64)
        self._here = None  # the current step's cells, see _at
        from tunesmith.form.inputs import sounding_ids

        for p, prefix in enumerate(prefixes):
            rows = plan == p
            if prefix:
                self.written[rows, : len(prefix)] = prefix
                self.sounded[rows, : len(prefix)] = sounding_ids(prefix, self.hold)
                starts = [0] + sorted(self.starts[ids[p]])
                begun = max(s for s in starts if s <= len(prefix) - 1)
                self.pitched[rows] = bool(self.is_pitch[prefix[begun:]].any())
        # each row's sounding id before its step (<pad> before the first)
        self.sounding = self.sounded[np.arange(len(plan)), np.maximum(self.step - 1, 0)]
        # per row, per earlier phrase: its onsets the current phrase has reached, and those it struck too
        self.seen = np.zeros((len(plan), phrases), np.int64)
        self.agree = np.zeros((len(plan), phrases), np.int64)
        for p, f in enumerate(forms):
            if f is not None and prefixes[p]:
                seen, agree = f.prefix_agree(prefixes[p])
                self.seen[plan == p, : len(seen)], self.agree[plan == p, : len(agree)] = seen, agree

    def _at(self) -> tuple:
        """Each row's step, row index, table row and packed cells, flags and biases at its step,
        and the start of its row in the flattened history (``written``, ``sounded``); computed once
        per step (``advance``, ``reorder`` and ``extend`` start a new one)."""
        if self._here is None:
            step, plan, width = self.step, self.plan, self.cells.shape[1]
            flat = plan * width + step  # the row's (plan, step) cell in the flattened tables
            rows = np.arange(len(step))
            self._here = (step, rows, plan, self.cells.reshape(-1, 5)[flat], self.flags.reshape(-1, 7)[flat],
                          self.biases.reshape(-1, 2)[flat], rows * self.written.shape[1])  # fmt: skip
            self._rivals = None
        return self._here

    def _rival_tokens(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each row's step at the same offset in each earlier phrase (-1: none), its token there
        (its step 0's where none) and whether a note or rest begins there: computed once per
        step, like :meth:`_at`."""
        step, _, plan, _, _, _, base = self._at()
        if self._rivals is None:
            sources = self.rivals.reshape(-1, self.rivals.shape[2])[plan * self.rivals.shape[1] + step]
            there = np.take(self.written, base[:, None] + np.maximum(sources, 0))
            self._rivals = sources, there, (sources >= 0) & (there != self.hold)
        return self._rivals

    def inputs(self) -> np.ndarray:
        """Form inputs [rows, 5] of each row's next step (zeros past its form's end or without a form)."""
        _, rows, _, cells, flags, _, base = self._at()
        at, has, blank = base + cells[:, self._AT], flags[:, self._HAS], cells[:, self._BLANK]
        table = np.empty((len(rows), 5), np.int64)
        table[:, :3] = cells[:, self._STATIC]
        table[:, 3] = np.where(has, np.take(self.written, at), blank)  # the restated step's token
        table[:, 4] = np.where(has, np.take(self.sounded, at), blank)  # and sounding id
        return table

    def allowed(self, ctx) -> torch.Tensor | None:
        starting = [(a, b) for p, a, b, step, _ in ctx.segments if step in self.starts[p]]
        if not starting:
            return None
        mask = torch.ones(ctx.rows, len(self.vocab), dtype=torch.bool)
        for a, b in starting:
            mask[a:b, self.hold] = False
        return mask.to(ctx.device)

    def bias(self, ctx) -> torch.Tensor | None:
        segments = ctx.segments
        if not any(step < len(self.active[p]) and self.active[p][step] for p, _, _, step, _ in segments):
            return None
        step, rows, plan, cells, flags, biases, base = self._at()
        target = np.take(self.written, base + cells[:, self._AT])
        pitched = self.pitched & ~flags[:, self._IS_START]
        values = np.where(flags[:, self._BODY] & ~pitched, biases[:, self._CADENCE], biases[:, self._STRENGTH])
        bias = np.zeros((len(rows), len(self.vocab)), np.float32)
        bias[rows, target] = values
        closing = np.flatnonzero(flags[:, self._CLOSING])  # (only these rows get anything added)
        if closing.size:
            on_tonic = self.is_tonic[plan[closing], self.sounding[closing]]
            bias[closing] += self.closing[plan[closing], on_tonic]
        final = np.flatnonzero(flags[:, self._FINAL])
        if final.size:  # the last beat of a closing phrase: FormControl._ending
            bias[final] += self.ending[plan[final]]
            off = flags[:, self._FINAL_START] & ~(self.is_final[plan, self.sounding] & (step > 0))
            bias[rows[off], self.hold] -= self.hold_penalty[plan[off]]
        _, there, onset = self._rival_tokens()  # each earlier phrase's token here, and whether one begins
        copied = onset & (self.seen >= CONTRAST_FROM) & (self.agree >= CONTRAST_SHARE * self.seen)
        if copied.any():  # a new letter copying an earlier phrase: FormControl._contrast
            row, rival = np.nonzero(copied)
            penalty = np.zeros_like(bias)
            penalty[row, there[row, rival]] = CONTRAST_BIAS
            bias = bias - penalty
        return torch.from_numpy(bias).to(ctx.device)

    def advance(self, chosen) -> None:
        chosen = as_numpy(chosen)
        step, rows, _, _, flags, _, base = self._at()
        _, there, onset = self._rival_tokens()
        starting = flags[:, self._IS_START]  # a phrase begins: nothing copied yet
        self.seen[starting], self.agree[starting] = 0, 0
        self.seen += onset
        self.agree += onset & (there == chosen[:, None])
        sounding = np.where((chosen == self.hold) & (step > 0), self.sounding, chosen)
        np.put(self.written, base + step, chosen)
        np.put(self.sounded, base + step, sounding)
        self.sounding = sounding
        pitch = self.is_pitch[chosen]
        self.pitched = np.where(flags[:, self._IS_START], pitch, self.pitched | pitch)
        self.step, self._here = step + 1, None

    def reorder(self, index) -> None:
        index = as_numpy(index)
        self._here = None
        self.written, self.sounded = self.written[index], self.sounded[index]
        self.pitched, self.sounding = self.pitched[index], self.sounding[index]
        self.seen, self.agree = self.seen[index], self.agree[index]
        self.step, self.plan = self.step[index], self.plan[index]

    _PER_PLAN = ("cells", "flags", "biases", "closing", "is_tonic", "ending", "is_final", "hold_penalty")
    _ALONG_STEPS = ("cells", "flags", "biases")

    def extend(self, other: FormRows) -> None:
        """Append ``other``'s rows and plans (plans joining a running stream, :mod:`stream`); the
        table rows of plans that left are dropped on the way."""
        self._here = None
        live = np.unique(self.plan)
        remap = np.full(self.closing.shape[0], -1, np.int64)
        remap[live] = np.arange(live.shape[0])
        width = max(self.written.shape[1], other.written.shape[1])

        def pad(table: np.ndarray, fill) -> np.ndarray:  # [n, width, ...] along the steps
            extra = np.full((table.shape[0], width - table.shape[1], *table.shape[2:]), fill, table.dtype)
            return np.concatenate([table, extra], 1)


        for name in self._PER_PLAN:
            mine, theirs = getattr(self, name)[live], getattr(other, name)
            if name in self._ALONG_STEPS:
                mine, theirs = pad(mine, 0), pad(theirs, 0)
            setattr(self, name, np.concatenate([mine, theirs]))
        phrases = max(self.rivals.shape[2], other.rivals.shape[2])

        def wider(table: np.ndarray, fill) -> np.ndarray:  # [..., phrases]: the most phrases of either
            extra = np.full((*table.shape[:-1], phrases - table.shape[-1]), fill, table.dtype)
            return np.concatenate([table, extra], -1)

        self.rivals = np.concatenate([wider(pad(self.rivals[live], -1), -1), wider(pad(other.rivals, -1), -1)])
        self.seen = np.concatenate([wider(self.seen, 0), wider(other.seen, 0)])
        self.agree = np.concatenate([wider(self.agree, 0), wider(other.agree, 0)])
        self.written = np.concatenate([pad(self.written, self.pad), pad(other.written, self.pad)])
        self.sounded = np.concatenate([pad(self.sounded, self.pad), pad(other.sounded, self.pad)])
        self.plan = np.concatenate([remap[self.plan], other.plan + live.shape[0]])
        self.pitched = np.concatenate([self.pitched, other.pitched])
        self.sounding = np.concatenate([self.sounding, other.sounding])
        self.step = np.concatenate([self.step, other.step])
        self.starts.update(other.starts)
        self.active.update(other.active)

    def forget(self, ids: list[int]) -> None:
        """Plans ``ids`` left (their rows are already reordered away)."""
        for i in ids:
            self.starts.pop(i, None)
            self.active.pop(i, None)
