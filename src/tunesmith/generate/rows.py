"""Several plans decoded as ONE pass, each row with its own plan (:func:`decode.decode_plans`).

A server answering many requests at once batches them: composes with different seeds (and so
different drawn forms, lengths and phrases), regenerations of different melodies and regions.
Each plan keeps what makes it itself — its prefix, length, fixed and scored steps, positions,
mode and meter, masks, form and random stream — and its rows give exactly what the plan gives
decoded alone by :func:`decode.decode` (the tests compare them token for token):

- the prefixes go through the model in one forward call per prefix length (no step-by-step
  feeding), and the rows are aligned at their first free step: at loop step ``k`` a row of a
  plan with prefix length ``s`` is at step ``s + k`` of its melody;
- a plan draws random numbers only at its own free steps, from its own stream, as it would
  alone (:class:`~tunesmith.generate.sampling.JoinedRandom`);
- a plan leaves the batch when its rows are done (its length, or all ended), so short plans do
  not pay for long ones;
- the plans' controls are merged into row-wise ones here (structure, pitch masks, form) and in
  :meth:`CopyGuard.merge`, which compute for every row what the plan's own control computes.

The single-plan loop in :mod:`decode` stays the scalar special case (one melody's speed).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tunesmith.errors import TunesmithError
from tunesmith.generate.controls import StepContext, Structure, TokenMask
from tunesmith.generate.copyguard import CopyGuard
from tunesmith.generate.decode import Decoded, _explain
from tunesmith.generate.form import FormControl
from tunesmith.generate.sampling import JoinedRandom, SamplingError


@dataclass(slots=True)
class RowsContext(StepContext):
    """A step of several plans: ``segments`` lists ``(plan, first_row, end_row, step, total_steps)``
    of every plan still decoding (its rows are ``first_row:end_row``); the scalar fields are the
    first plan's."""

    segments: list = None


def decode_rows(model, plans: list, chooser, generators: list, device: torch.device) -> list[Decoded]:
    """See the module docstring; ``generators[i]`` is plan ``i``'s stream."""
    vocab = plans[0].vocab
    count = len(plans)
    sizes = [plan.num for plan in plans]
    starts = [len(plan.prefix) for plan in plans]
    lengths = [plan.total_steps - s for plan, s in zip(plans, starts)]
    if min(lengths) < 1:
        raise TunesmithError("a plan has no step to decode")
    longest = max(lengths)
    plan_of_row = torch.repeat_interleave(torch.arange(count), torch.tensor(sizes))
    # each row's positions from its first free step on (one column per loop step, one more for the next)
    local = torch.zeros(count, longest + 1, dtype=torch.long)
    for p, plan in enumerate(plans):
        local[p, : lengths[p] + 1] = torch.tensor(plan.positions[starts[p] : plan.total_steps + 1])
    positions = local[plan_of_row].to(device)
    # each row's fixed token (-1 = free) and whether it is scored, per loop step
    given_table = torch.full((count, longest), -1, dtype=torch.long)
    scored_table = torch.zeros(count, longest, dtype=torch.bool)
    for p, plan in enumerate(plans):
        steps = [step for step in plan.fixed if starts[p] <= step < plan.total_steps]
        if steps:
            at = torch.tensor(steps) - starts[p]
            given_table[p, at] = torch.tensor([plan.fixed[step] for step in steps])
            if plan.scored_from is not None:
                scored_table[p, at] = torch.tensor(steps) >= plan.scored_from
    given_table, scored_table = given_table[plan_of_row].to(device), scored_table[plan_of_row].to(device)
    modes = torch.tensor([plan.mode_id for plan in plans], device=device)[plan_of_row.to(device)]
    meters = torch.tensor([plan.meter_id for plan in plans], device=device)[plan_of_row.to(device)]
    form_aware = bool(getattr(model, "form_inputs", False))
    forms = [plan.form for plan in plans]
    form_rows = FormRows(forms, sizes, [plan.prefix for plan in plans], vocab, max(p.total_steps for p in plans)) \
        if any(f is not None for f in forms) else None
    logits, state, previous = _encode_prefixes(model, plans, sizes, form_aware, device)
    controls = merge_controls(plans, sizes, form_rows)
    rows = sum(sizes)
    first = [sum(sizes[:p]) for p in range(count)]
    span = {p: (first[p], first[p] + sizes[p]) for p in range(count)}  # current rows of each plan
    active = list(range(count))
    row_ids = torch.arange(rows, device=device)  # original row of each current row
    out = torch.full((rows, longest), vocab.end, dtype=torch.long, device=device)
    finished = torch.zeros(rows, dtype=torch.bool, device=device)
    scored = torch.zeros(rows, device=device)
    final: dict[int, list[float]] = {}
    end = torch.full((rows,), vocab.end, device=device)
    chooser.end = vocab.end
    chooser.start(rows, device)
    for k in range(longest):
        segments = [(p, *span[p], starts[p] + k, plans[p].total_steps) for p in active]
        fixed = {p: plans[p].fixed.get(step) for p, _, _, step, _ in segments}
        given = [segment for segment in segments if fixed[segment[0]] is not None]
        if given:
            if not bool(torch.isfinite(logits).all()):
                raise TunesmithError(f"the model gave NaN or infinite scores at step {given[0][3]}: the checkpoint is broken")
            column = given_table[:, k]
            chosen = column.clone()  # the free rows' -1 are overwritten below
            if any(plans[p].scored_from is not None and step >= plans[p].scored_from for p, _, _, step, _ in given):
                log_probs = torch.log_softmax(logits, dim=-1).gather(1, column.clamp(min=0)[:, None])[:, 0]
                scored += torch.where(scored_table[:, k] & ~finished, log_probs, 0.0)
        else:
            chosen = torch.empty(finished.shape[0], dtype=torch.long, device=device)
        free = [segment for segment in segments if fixed[segment[0]] is None]
        if free:
            p0, _, _, step0, total0 = segments[0]
            position0 = plans[p0].positions[step0]
            ctx = RowsContext(step0, position0, plans[p0].bar_of_step[step0], position0 == 0, total0,
                              finished.shape[0], device, vocab, previous, segments)  # fmt: skip
            allowed, scores = None, logits
            for control in controls:
                mask = control.allowed(ctx)
                if mask is not None:
                    allowed = mask if allowed is None else allowed & mask
                bias = control.bias(ctx)
                if bias is not None:
                    scores = scores + bias
            if allowed is not None:
                scores = scores.masked_fill(~allowed, float("-inf"))
            streams = JoinedRandom([(generators[p], b - a) for p, a, b, _, _ in free])
            if len(free) == len(segments):
                index = None
                pick, done, raw = scores, finished, logits
            else:
                index = torch.cat([torch.arange(a, b, device=device) for _, a, b, _, _ in free])
                pick, done, raw = scores[index], finished[index], logits[index]
            try:
                picked, _ = chooser.choose(pick, done, streams)
            except SamplingError:
                _explain(pick, raw, free[0][3])
                raise
            if index is None:
                chosen = picked
            else:
                chosen[index] = picked
        chosen = torch.where(finished, end[: finished.shape[0]], chosen)  # a finished melody only repeats its end
        for control in controls:
            control.advance(chosen)
        out[row_ids, k] = chosen
        finished = finished | (chosen == vocab.end)
        any_finished = bool(finished.any())
        leaving = [p for p, a, b, step, total in segments
                   if step + 1 == total or (any_finished and bool(finished[a:b].all()))]  # fmt: skip
        for p in leaving:
            a, b = span[p]
            final[p] = scored[a:b].tolist()
        if leaving:
            active = [p for p in active if p not in leaving]
            if not active:
                break
            keep = torch.cat([torch.arange(*span[p], device=device) for p in active])
            offset = 0
            for p in active:
                span[p], offset = (offset, offset + sizes[p]), offset + sizes[p]
            state = model.reorder_state(state, keep)
            chosen, finished, scored, row_ids = chosen[keep], finished[keep], scored[keep], row_ids[keep]
            positions, modes, meters = positions[keep], modes[keep], meters[keep]
            given_table, scored_table = given_table[keep], scored_table[keep]
            for control in controls:
                control.reorder(keep)
        form = form_rows.inputs(device) if form_rows is not None and form_aware else None
        logits, state = model.step(chosen, positions[:, k + 1], modes, meters, state, form=form)
        logits, previous = logits.float(), chosen
    decoded = []
    for p, plan in enumerate(plans):
        ids = []
        for row in out[first[p] : first[p] + sizes[p], : lengths[p]].tolist():
            ids.append(list(plan.prefix) + (row[: row.index(vocab.end) + 1] if vocab.end in row else row))
        decoded.append(Decoded(ids, final[p]))
    return decoded


def _encode_prefixes(model, plans, sizes, form_aware, device):
    """``<s>`` + each plan's prefix through the model, one forward call per prefix length;
    returns the logits after each row's prefix, the state and each row's last fed token."""
    by_length: dict[int, list[int]] = {}
    for p, plan in enumerate(plans):
        by_length.setdefault(len(plan.prefix) + 1, []).append(p)
    order, logits, states = [], [], []
    for length, members in by_length.items():
        group = [plans[p] for p in members]
        fed = torch.tensor([[plan.vocab.start] + plan.prefix for plan in group], device=device)
        positions = torch.tensor([plan.positions[:length] for plan in group], device=device)
        modes = torch.tensor([plan.mode_id for plan in group], device=device)
        meters = torch.tensor([plan.meter_id for plan in group], device=device)
        form = None
        if form_aware and any(plan.form is not None for plan in group):
            form = torch.cat([plan.form.prefix_inputs(plan.prefix, device) if plan.form is not None
                              else torch.zeros(1, length, 5, dtype=torch.long, device=device) for plan in group])  # fmt: skip
        out, state = model(fed, positions, modes, meters, form=form)
        order += members
        logits.append(out[:, -1])
        states.append(state)
    state = type(states[0])(torch.cat([s.h for s in states], 1), torch.cat([s.c for s in states], 1),
                            *(torch.cat([s[i] for s in states]) for i in range(2, len(states[0]))))  # fmt: skip
    where = {p: i for i, p in enumerate(order)}
    which = torch.tensor([where[p] for p, size in enumerate(sizes) for _ in range(size)], device=device)
    last = [([plan.vocab.start] + plan.prefix)[-1] for plan, size in zip(plans, sizes) for _ in range(size)]
    return torch.cat(logits)[which].float(), model.reorder_state(state, which), torch.tensor(last, device=device)


def merge_controls(plans, sizes, form_rows) -> list:
    """Row-wise controls for the plans' own controls (structure, pitch masks, form, copy guard)."""
    kinds: dict[type, list] = {Structure: [None] * len(plans), TokenMask: [None] * len(plans),
                               CopyGuard: [None] * len(plans)}  # fmt: skip
    for p, plan in enumerate(plans):
        for control in plan.controls:
            if isinstance(control, FormControl):
                continue  # FormRows, from plan.form
            kind = next((k for k in kinds if isinstance(control, k)), None)
            if kind is None or kinds[kind][p] is not None:
                raise TunesmithError(f"a {type(control).__name__} control decodes one plan at a time")
            kinds[kind][p] = control
    prefixes = [plan.prefix for plan in plans]
    merged = [RowStructure(kinds[Structure], sizes, plans)]
    if any(kinds[TokenMask]):
        merged.append(RowMask(kinds[TokenMask], sizes))
    if form_rows is not None:
        merged.append(form_rows)
    if any(kinds[CopyGuard]):
        merged.append(CopyGuard.merge(kinds[CopyGuard], sizes, prefixes))
    return merged


class RowStructure:
    """:class:`~tunesmith.generate.controls.Structure` row by row, with each plan's ``end_from``
    (a plan without a Structure control never ends early: it runs its length)."""

    def __init__(self, structures: list, sizes: list[int], plans: list):
        self.end_from = [s.end_from if s is not None else None for s in structures]
        self.plans, self.vocab = plans, plans[0].vocab
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


class RowMask:
    """The plans' ``--scale``/``--range``/instrument masks, row by row (all allowed for a plan without one)."""

    def __init__(self, masks: list, sizes: list[int]):
        vocab_size = next(m for m in masks if m is not None).mask.shape[0]
        per_plan = [m.mask if m is not None else torch.ones(vocab_size, dtype=torch.bool) for m in masks]
        self.mask = torch.stack([mask for mask, size in zip(per_plan, sizes) for _ in range(size)])

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
                 total_steps: int):  # fmt: skip
        self.forms, self.vocab = forms, vocab
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
        # python views for the per-step checks
        self.starts = [set(f.form.starts[1:]) if f is not None else set() for f in forms]
        self.active = [[bool(s or c) for s, c in zip(f.strength, f.closing)] if f is not None else [] for f in forms]
        plan = torch.repeat_interleave(torch.arange(count), torch.tensor(sizes))
        self.plan = plan
        self.ids = torch.full((len(plan), width), self.pad, dtype=torch.long)
        self.sounding = self.ids.clone()
        self.pitched = torch.zeros(len(plan), dtype=torch.bool)  # a pitch since the current phrase began
        self.is_pitch = torch.zeros(len(vocab), dtype=torch.bool)
        self.is_pitch[vocab.pitch_ids] = True
        self.step = torch.tensor([len(prefixes[p]) for p in plan.tolist()], dtype=torch.long)
        from tunesmith.form.inputs import sounding_ids

        for p, prefix in enumerate(prefixes):
            rows = plan == p
            if prefix:
                self.ids[rows, : len(prefix)] = torch.tensor(prefix)
                self.sounding[rows, : len(prefix)] = torch.tensor(sounding_ids(prefix, self.hold))
                starts = [0] + sorted(self.starts[p])
                begun = max(s for s in starts if s <= len(prefix) - 1)
                self.pitched[rows] = bool(self.is_pitch[torch.tensor(prefix[begun:])].any())

    def _at(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        step = self.step
        return step, self.plan, step < self.length[self.plan]

    def inputs(self, device) -> torch.Tensor:
        """Form inputs [rows, 5] of each row's next step (zeros past its form's end or without a form)."""
        step, plan, inside = self._at()
        source = self.source[plan, step]
        has = source >= 0
        at = source.clamp(min=0)[:, None]
        token = torch.where(has, self.ids.gather(1, at)[:, 0], self.pad)
        sounding = torch.where(has, self.sounding.gather(1, at)[:, 0], self.pad)
        rows = torch.cat([self.static[plan, step], token[:, None], sounding[:, None]], 1)
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
        strength = torch.where(inside, self.strength[plan, step], 0.0)
        target = self.ids.gather(1, self.source[plan, step].clamp(min=0)[:, None])
        pitched = self.pitched & ~self.is_start[plan, step]
        values = torch.where(self.body[plan, step] & inside & ~pitched, self.cadence[plan], strength)
        bias = torch.zeros(len(plan), len(self.vocab)).scatter_(1, target, values[:, None])
        closing = self.closing[plan, step] & inside
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
        self.pitched = torch.where(self.is_start[plan, step], pitch, self.pitched | pitch)
        self.step = step + 1

    def reorder(self, index: torch.Tensor) -> None:
        index = index.cpu()
        self.ids, self.sounding, self.pitched = self.ids[index], self.sounding[index], self.pitched[index]
        self.step, self.plan = self.step[index], self.plan[index]
