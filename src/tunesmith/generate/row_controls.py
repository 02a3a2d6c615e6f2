"""Row-wise controls: the plans' own controls merged over the rows of one pass (:mod:`rows`).

Each computes, for every row, what its plan's own control (:mod:`tunesmith.generate.controls`,
:class:`~tunesmith.generate.form.FormControl`) computes at that row's step, with the same
values, so a batched row decodes exactly as its plan alone. They read ``ctx.segments`` (each
plan's rows and step) and follow the loop's row shuffles through ``reorder``.
"""

from __future__ import annotations

import torch

from tunesmith.generate.form import FormControl


class RowStructure:
    """:class:`~tunesmith.generate.controls.Structure` row by row, with each plan's ``end_from``
    (a plan without a Structure control never ends early: it runs its length)."""

    def __init__(self, structures: list, sizes: list[int], plans: list, ids: list[int] | None = None):
        ids = list(range(len(plans))) if ids is None else ids  # the plans' numbers in ctx.segments
        self.end_from = {i: s.end_from if s is not None else None for i, s in zip(ids, structures)}
        self.plans, self.vocab = dict(zip(ids, plans)), plans[0].vocab
        vocab = self.vocab
        self.is_pitch = torch.zeros(len(vocab), dtype=torch.bool)
        self.is_pitch[vocab.pitch_ids] = True
        has = [bool(self.is_pitch[plan.prefix].any()) if plan.prefix else False for plan in plans]
        self.has_note = torch.tensor([h for h, size in zip(has, sizes) for _ in range(size)])
        self.settled = False
        self.base = torch.ones(len(vocab), dtype=torch.bool)
        self.base[[vocab.pad, vocab.start]] = False
        self.no_end = self.base.clone()
        self.no_end[vocab.end] = False

    def _may_end(self, p: int, step: int) -> bool:
        end_from = self.end_from[p]
        return end_from is not None and step >= end_from and self.plans[p].positions[step] == 0

    def allowed(self, ctx) -> torch.Tensor:
        vocab = self.vocab
        ends = [(self._may_end(p, step), b - a) for p, a, b, step, _ in ctx.segments]
        self.settled = self.settled or bool(self.has_note.all())
        if self.settled and all(not e for e, _ in ends):
            return self.no_end.to(ctx.device)
        at_end = torch.tensor([e for e, n in ends for _ in range(n)], device=ctx.device)
        mask = self.base.to(ctx.device).expand(ctx.rows, len(vocab)).clone()
        mask[:, vocab.end] = self.has_note.to(ctx.device) & at_end
        mask[:, vocab.hold] = ctx.previous != vocab.start
        return mask

    def bias(self, ctx) -> None:
        return None

    def advance(self, chosen: torch.Tensor) -> None:
        if not self.settled:
            self.has_note = self.has_note | self.is_pitch[chosen.cpu()]

    def reorder(self, index: torch.Tensor) -> None:
        self.has_note = self.has_note[index.cpu()]

    def extend(self, other: RowStructure) -> None:
        """Append ``other``'s rows and plans (plans joining a running stream, :mod:`stream`)."""
        self.end_from.update(other.end_from)
        self.plans.update(other.plans)
        self.has_note = torch.cat([self.has_note, other.has_note])
        self.settled = False

    def forget(self, ids: list[int]) -> None:
        """Plans ``ids`` left (their rows are already reordered away)."""
        for i in ids:
            self.end_from.pop(i, None)
            self.plans.pop(i, None)


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
    rule at phrase starts, restatement, cadence and closing biases)."""

    def __init__(self, forms: list[FormControl | None], sizes: list[int], prefixes: list[list[int]], vocab,
                 total_steps: int, ids: list[int] | None = None):  # fmt: skip
        ids = list(range(len(forms))) if ids is None else ids  # the plans' numbers in ctx.segments
        self.vocab = vocab
        count = len(forms)
        width = max([len(f.source) for f in forms if f is not None] + [total_steps + 1])
        self.hold, self.pad = vocab.ids(["_"])[0], vocab.pad
        self.static = torch.zeros(count, width, 3, dtype=torch.long)
        self.source = torch.full((count, width), -1, dtype=torch.long)
        self.strength = torch.zeros(count, width)
        self.body = torch.zeros(count, width, dtype=torch.bool)
        self.closing = torch.zeros(count, width, dtype=torch.bool)
        self.is_start = torch.zeros(count, width, dtype=torch.bool)
        self.length = torch.zeros(count, dtype=torch.long)
        self.cadence = torch.zeros(count)
        self.tonic = torch.zeros(count, len(vocab))
        self.hold_on_tonic = torch.zeros(count, len(vocab))
        self.is_tonic = torch.zeros(count, len(vocab), dtype=torch.bool)
        for p, f in enumerate(forms):
            if f is None:
                continue
            n = len(f.source)
            self.static[p, :n], self.source[p, :n] = f.static, torch.tensor(f.source)
            self.strength[p, :n], self.body[p, :n] = torch.tensor(f.strength), torch.tensor(f.body)
            self.closing[p, :n], self.length[p], self.cadence[p] = torch.tensor(f.closing), n, f.cadence_bias
            self.is_start[p, f.form.starts] = True
            self.tonic[p], self.hold_on_tonic[p], self.is_tonic[p] = f.tonic, f.hold_on_tonic, f.is_tonic
        # python views for the per-step checks, by plan number
        self.starts = {i: set(f.form.starts[1:]) if f is not None else set() for i, f in zip(ids, forms)}
        self.active = {i: [bool(s or c) for s, c in zip(f.strength, f.closing)] if f is not None else []
                       for i, f in zip(ids, forms)}  # fmt: skip
        plan = torch.repeat_interleave(torch.arange(count), torch.tensor(sizes))  # each row's table row
        self.plan = plan
        self.ids = torch.full((len(plan), width), self.pad, dtype=torch.long)
        self.sounding = self.ids.clone()
        self.pitched = torch.zeros(len(plan), dtype=torch.bool)  # a pitch since the current phrase began
        self.is_pitch = torch.zeros(len(vocab), dtype=torch.bool)
        self.is_pitch[vocab.pitch_ids] = True
        self.step = torch.tensor([len(prefixes[p]) for p in plan.tolist()], dtype=torch.long)
        self._here = None  # the current step's (step, plan, inside, flat cell), see _at
        from tunesmith.form.inputs import sounding_ids

        for p, prefix in enumerate(prefixes):
            rows = plan == p
            if prefix:
                self.ids[rows, : len(prefix)] = torch.tensor(prefix)
                self.sounding[rows, : len(prefix)] = torch.tensor(sounding_ids(prefix, self.hold))
                starts = [0] + sorted(self.starts[ids[p]])
                begun = max(s for s in starts if s <= len(prefix) - 1)
                self.pitched[rows] = bool(self.is_pitch[torch.tensor(prefix[begun:])].any())

    def _at(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Each row's step, table row and whether the step is inside its form; computed once per
        step (``advance``, ``reorder`` and ``extend`` start a new one)."""
        if self._here is None:
            step, plan = self.step, self.plan
            flat = plan * self.source.shape[1] + step  # the row's (plan, step) cell in the flattened tables
            self._here = (step, plan, step < self.length[plan], flat)
        return self._here[:3]

    def _cell(self, name: str) -> torch.Tensor:
        """Table ``name`` at each row's (plan, step)."""
        self._at()
        table = getattr(self, name)
        return table.view(-1, *table.shape[2:])[self._here[3]]

    def inputs(self, device) -> torch.Tensor:
        """Form inputs [rows, 5] of each row's next step (zeros past its form's end or without a form)."""
        step, plan, inside = self._at()
        source = self._cell("source")
        has = source >= 0
        at = source.clamp(min=0)[:, None]
        token = torch.where(has, self.ids.gather(1, at)[:, 0], self.pad)
        sounding = torch.where(has, self.sounding.gather(1, at)[:, 0], self.pad)
        rows = torch.cat([self._cell("static"), token[:, None], sounding[:, None]], 1)
        return torch.where(inside[:, None], rows, 0).to(device)

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
        step, plan, inside = self._at()
        strength = torch.where(inside, self._cell("strength"), 0.0)
        target = self.ids.gather(1, self._cell("source").clamp(min=0)[:, None])
        pitched = self.pitched & ~self._cell("is_start")
        values = torch.where(self._cell("body") & inside & ~pitched, self.cadence[plan], strength)
        bias = torch.zeros(len(plan), len(self.vocab)).scatter_(1, target, values[:, None])
        closing = self._cell("closing") & inside
        if bool(closing.any()):
            before = self.sounding.gather(1, (step - 1).clamp(min=0)[:, None])[:, 0]
            sounding = torch.where(step > 0, before, self.ids[:, 0])
            on_tonic = self.is_tonic[plan, sounding][:, None]
            closing_bias = self.tonic[plan] + torch.where(on_tonic, self.hold_on_tonic[plan], 0.0)
            bias = bias + torch.where(closing[:, None], closing_bias, 0.0)
        return bias.to(ctx.device)

    def advance(self, chosen: torch.Tensor) -> None:
        chosen = chosen.cpu()
        step, plan, _ = self._at()
        at = step[:, None]
        before = self.sounding.gather(1, (step - 1).clamp(min=0)[:, None])[:, 0]
        sounding = torch.where((chosen == self.hold) & (step > 0), before, chosen)
        self.ids.scatter_(1, at, chosen[:, None])
        self.sounding.scatter_(1, at, sounding[:, None])
        pitch = self.is_pitch[chosen]
        self.pitched = torch.where(self._cell("is_start"), pitch, self.pitched | pitch)
        self.step, self._here = step + 1, None

    def reorder(self, index: torch.Tensor) -> None:
        index = index.cpu()
        self._here = None
        self.ids, self.sounding, self.pitched = self.ids[index], self.sounding[index], self.pitched[index]
        self.step, self.plan = self.step[index], self.plan[index]

    _PER_PLAN = ("static", "source", "strength", "body", "closing", "is_start", "length", "cadence", "tonic",
                 "hold_on_tonic", "is_tonic")  # fmt: skip
    _ALONG_STEPS = ("static", "source", "strength", "body", "closing", "is_start")

    def extend(self, other: FormRows) -> None:
        """Append ``other``'s rows and plans (plans joining a running stream, :mod:`stream`); the
        table rows of plans that left are dropped on the way."""
        self._here = None
        live = torch.unique(self.plan)
        remap = torch.full((self.length.shape[0],), -1, dtype=torch.long)
        remap[live] = torch.arange(live.shape[0])
        width = max(self.ids.shape[1], other.ids.shape[1])

        def pad(table: torch.Tensor, fill) -> torch.Tensor:  # [n, width, ...] along the steps
            extra = torch.full((table.shape[0], width - table.shape[1], *table.shape[2:]), fill, dtype=table.dtype)
            return torch.cat([table, extra], 1)

        for name in self._PER_PLAN:
            mine, theirs = getattr(self, name)[live], getattr(other, name)
            if name in self._ALONG_STEPS:
                fill = -1 if name == "source" else 0
                mine, theirs = pad(mine, fill), pad(theirs, fill)
            setattr(self, name, torch.cat([mine, theirs]))
        self.ids = torch.cat([pad(self.ids, self.pad), pad(other.ids, self.pad)])
        self.sounding = torch.cat([pad(self.sounding, self.pad), pad(other.sounding, self.pad)])
        self.plan = torch.cat([remap[self.plan], other.plan + live.shape[0]])
        self.pitched = torch.cat([self.pitched, other.pitched])
        self.step = torch.cat([self.step, other.step])
        self.starts.update(other.starts)
        self.active.update(other.active)

    def forget(self, ids: list[int]) -> None:
        """Plans ``ids`` left (their rows are already reordered away)."""
        for i in ids:
            self.starts.pop(i, None)
            self.active.pop(i, None)
