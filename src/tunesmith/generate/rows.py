"""Several plans decoded as ONE pass, each row with its own plan (:func:`decode.decode_plans`).

A server answering many requests at once batches them: composes with different seeds (and so
different drawn forms, lengths and phrases), regenerations of different melodies and regions.
Each plan keeps what makes it itself — its prefix, length, fixed and scored steps, positions,
mode and meter, masks, form and random stream — and its rows give exactly what the plan gives
decoded alone by :func:`decode.decode` (the tests compare them token for token):

- the prefixes go through the model in one packed call (:meth:`MelodyLSTM.encode`, no
  step-by-step feeding), and the rows are aligned at their first free step: at loop step ``k`` a row of a
  plan with prefix length ``s`` is at step ``s + k`` of its melody;
- a plan draws random numbers only at its own free steps, from its own stream, as it would
  alone (:class:`~tunesmith.generate.sampling.JoinedRandom`);
- a plan leaves the batch when its rows are done (its length, or all ended), so short plans do
  not pay for long ones; once its free steps are behind it, rows with the same tokens so far
  (candidates that wrote the same region) go on as one row, the others copying its result;
- the plans' controls are merged into row-wise ones (:mod:`tunesmith.generate.row_controls`
  for structure, pitch masks and form; :meth:`CopyGuard.merge`), which compute for every row
  what the plan's own control computes.

The single-plan loop in :mod:`decode` stays the scalar special case (one melody's speed).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tunesmith.errors import TunesmithError
from tunesmith.generate.controls import StepContext, Structure, TokenMask, control_scores
from tunesmith.generate.copyguard import CopyGuard
from tunesmith.generate.decode import Decoded, _explain
from tunesmith.generate.form import FormControl
from tunesmith.generate.row_controls import FormRows, RowMask, RowStructure
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
    # the last free step of each plan: after it a plan's rows only take fixed tokens, so rows
    # with the same tokens so far stay the same to the end and one of them is decoded for all
    last_free = [max((s for s in range(starts[p], plan.total_steps) if s not in plan.fixed), default=-1)
                 for p, plan in enumerate(plans)]  # fmt: skip
    collapsed = [False] * count
    alias: dict[int, int] = {}  # an original row dropped as a duplicate → the row decoded for it
    active = list(range(count))
    row_ids = torch.arange(rows, device=device)  # original row of each current row
    out = torch.full((rows, longest), vocab.end, dtype=torch.long, device=device)
    finished = torch.zeros(rows, dtype=torch.bool, device=device)
    scored = torch.zeros(rows, device=device)
    final = torch.zeros(rows, device=device)  # each original row's scored sum, once its plan left
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
            scores = control_scores(controls, ctx, logits)
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
            final[row_ids[a:b]] = scored[a:b]
        dropped = _duplicates(segments, leaving, last_free, collapsed, out, row_ids, k)
        if leaving or dropped:
            active = [p for p in active if p not in leaving]
            if not active:
                break
            kept = {p: [r for r in range(*span[p]) if r not in dropped] for p in active}
            for r, rep in dropped.items():
                alias[int(row_ids[r])] = int(row_ids[rep])
            keep = torch.tensor([r for p in active for r in kept[p]], dtype=torch.long, device=device)
            offset = 0
            for p in active:
                span[p], offset = (offset, offset + len(kept[p])), offset + len(kept[p])
            state = model.reorder_state(state, keep)
            chosen, finished, scored, row_ids = chosen[keep], finished[keep], scored[keep], row_ids[keep]
            positions, modes, meters = positions[keep], modes[keep], meters[keep]
            given_table, scored_table = given_table[keep], scored_table[keep]
            for control in controls:
                control.reorder(keep)
        form = form_rows.inputs(device) if form_rows is not None and form_aware else None
        logits, state = model.step(chosen, positions[:, k + 1], modes, meters, state, form=form)
        logits, previous = logits.float(), chosen
    if alias:  # a dropped row took the same tokens and scores as the row decoded for it
        dups = torch.tensor(list(alias), device=device)
        reps = torch.tensor(list(alias.values()), device=device)
        out[dups], final[dups] = out[reps], final[reps]
    decoded = []
    for p, plan in enumerate(plans):
        ids = []
        for row in out[first[p] : first[p] + sizes[p], : lengths[p]].tolist():
            ids.append(list(plan.prefix) + (row[: row.index(vocab.end) + 1] if vocab.end in row else row))
        decoded.append(Decoded(ids, final[first[p] : first[p] + sizes[p]].tolist()))
    return decoded


def _duplicates(segments, leaving, last_free, collapsed, out, row_ids, k) -> dict[int, int]:
    """Rows to drop at loop step ``k``: in each plan whose free steps are all behind it, every row
    whose tokens so far repeat an earlier row's (it would take the same fixed tokens, the same
    state and scores to the end); maps each such current row to that earlier row."""
    dropped: dict[int, int] = {}
    for p, a, b, step, total in segments:
        if collapsed[p] or p in leaving or step < last_free[p] or b - a < 2:
            continue
        collapsed[p] = True
        seen: dict[tuple, int] = {}
        for r, history in enumerate(out[row_ids[a:b], : k + 1].tolist(), start=a):
            rep = seen.setdefault(tuple(history), r)
            if rep != r:
                dropped[r] = rep
    return dropped


def _encode_prefixes(model, plans, sizes, form_aware, device):
    """``<s>`` + each plan's prefix through the model, all plans in one call (padded to the longest,
    each read to its own end); returns the logits after each row's prefix, the state and each
    row's last fed token."""
    fed = [[plan.vocab.start] + plan.prefix for plan in plans]
    lengths = [len(f) for f in fed]
    longest = max(lengths)
    tokens = torch.tensor([f + [plans[0].vocab.pad] * (longest - len(f)) for f in fed], device=device)
    positions = torch.tensor([plan.positions[:n] + [0] * (longest - n) for plan, n in zip(plans, lengths)], device=device)
    modes = torch.tensor([plan.mode_id for plan in plans], device=device)
    meters = torch.tensor([plan.meter_id for plan in plans], device=device)
    form = None
    if form_aware and any(plan.form is not None for plan in plans):
        form = torch.zeros(len(plans), longest, 5, dtype=torch.long, device=device)
        for p, plan in enumerate(plans):
            if plan.form is not None:
                form[p, : lengths[p]] = plan.form.prefix_inputs(plan.prefix, device)[0]
    logits, state = model.encode(tokens, lengths, positions, modes, meters, form=form)
    which = torch.repeat_interleave(torch.arange(len(plans), device=device), torch.tensor(sizes, device=device))
    last = torch.tensor([f[-1] for f in fed], device=device)[which]
    return logits[which].float(), model.reorder_state(state, which), last


ROW_WISE = (Structure, TokenMask, CopyGuard, FormControl)  # the controls merge_controls merges


def row_wise(plan) -> bool:
    """Whether ``plan`` can share a pass: each of its controls has a row-wise merge (at most one of
    a kind; a form control comes from ``plan.form``). Other plans decode alone."""
    kinds = [next((k for k in ROW_WISE if isinstance(c, k)), None) for c in plan.controls]
    counted = [k for k in kinds if k is not FormControl]
    return None not in kinds and len(counted) == len(set(counted))


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
