"""Several plans decoded as ONE pass, each row with its own plan (:func:`decode.decode_plans`).

A server answering many requests at once batches them: composes with different seeds (and so
different drawn forms, lengths and phrases), regenerations of different melodies and regions.
Each plan keeps what makes it itself — its prefix, length, fixed and scored steps, positions,
mode and meter, masks, form and random stream — and its rows give exactly what the plan gives
decoded alone by :func:`decode.decode` (the tests compare them token for token):

- each distinct prefix goes through the model once (:meth:`MelodyLSTM.encode_prefix`, as in every
  loop), and the rows are aligned at their first free step: at loop step ``k`` a row of a
  plan with prefix length ``s`` is at step ``s + k`` of its melody;
- a plan draws random numbers only at its own free steps, from its own stream, as it would
  alone (:class:`~tunesmith.generate.sampling.JoinedRandom`);
- a plan leaves the batch when its rows are done (its length, or all ended), so short plans do
  not pay for long ones; once its free steps are behind it, rows with the same tokens so far
  (candidates that wrote the same region) go on as one row, the others copying its result;
- the plans' controls are merged into row-wise ones (:mod:`tunesmith.generate.row_controls`
  for structure, pitch masks and form; :meth:`CopyGuard.merge`), which compute for every row
  what the plan's own control computes.

The loop itself is :class:`tunesmith.generate.stream.RowStream`, where plans may also join while
others run (a server's continuous batching); a pass is every plan joining at the start. The
single-plan loop in :mod:`decode` stays the scalar special case (one melody's speed).
"""

from __future__ import annotations

import collections
import itertools
import threading
from dataclasses import dataclass
from typing import Any

import torch

from tunesmith.errors import TunesmithError
from tunesmith.generate.controls import StepContext, Structure, TokenMask
from tunesmith.generate.copyguard import CopyGuard
from tunesmith.generate.decode import Decoded
from tunesmith.generate.form import FormControl
from tunesmith.generate.row_controls import FormRows, RowMask, RowStructure


@dataclass(slots=True)
class RowsContext(StepContext):
    """A step of several plans: ``segments`` lists ``(plan, first_row, end_row, step, total_steps)``
    of every plan still decoding (its rows are ``first_row:end_row``); the scalar fields are the
    first plan's."""

    segments: list = None


def decode_rows(model, plans: list, chooser, generators: list, device: torch.device) -> list[Decoded]:
    """See the module docstring; ``generators[i]`` is plan ``i``'s stream. Every plan joins one
    :class:`~tunesmith.generate.stream.RowStream` at the start, which runs until all have left."""
    from tunesmith.generate.stream import RowStream

    results: list = [None] * len(plans)

    def answer(index: int):
        def done(decoded) -> None:
            results[index] = decoded

        return done

    stream = RowStream(model, chooser, device)
    stream.add(plans, generators, [answer(i) for i in range(len(plans))])
    while stream.busy:
        stream.step()
    return results


_numbers = itertools.count()  # plan numbers, unique across streams and threads (ctx.segments, row-wise controls)


@dataclass(eq=False)
class Cohort:
    """Plans ready to join a stream: their row-wise controls built and prefixes encoded (see :func:`prepare`)."""

    plans: list
    streams: list
    callbacks: list
    numbers: list[int]
    starts: list[int]
    lengths: list[int]
    last_free: list[int]
    per: list[int]
    sizes: list[int]
    controls: list
    logits: torch.Tensor
    state: Any
    previous: torch.Tensor


def prepare(model, plans: list, streams: list, callbacks: list, device: torch.device) -> Cohort:
    """Everything a stream needs from ``plans`` before they join it — their row-wise controls and
    their prefixes through the model — computed without the stream, so a server's request threads
    do it beside the running loop (the LSTM over a prefix releases the GIL). Raises TunesmithError
    for a plan the loop cannot take."""
    if not plans:
        return Cohort([], [], [], [], [], [], [], [], [], [], None, None, None)
    vocab = plans[0].vocab
    starts = [len(plan.prefix) for plan in plans]
    lengths = [plan.total_steps - s for plan, s in zip(plans, starts)]
    if min(lengths) < 1:
        raise TunesmithError("a plan has no step to decode")
    if any(plan.vocab.tokens != vocab.tokens for plan in plans):
        raise TunesmithError("plans decoded together must share one vocabulary")
    last_free = [max((s for s in range(starts[p], plan.total_steps) if s not in plan.fixed), default=-1)
                 for p, plan in enumerate(plans)]  # fmt: skip
    per = [plan.num // plan.trunks if branches(plan, starts[p], last_free[p]) else 1 for p, plan in enumerate(plans)]
    sizes = [plan.num // k for plan, k in zip(plans, per)]
    numbers = [next(_numbers) for _ in plans]
    form_aware = bool(getattr(model, "form_inputs", False))
    controls = cohort_controls(plans, sizes, numbers, form_aware)  # raises for a control with no row-wise merge
    logits, state, previous = encode_prefixes(model, plans, sizes, form_aware, device)
    return Cohort(list(plans), list(streams), list(callbacks), numbers, starts, lengths, last_free, per, sizes,
                  controls, logits, state, previous)  # fmt: skip


def branches(plan, start: int, last_free: int) -> bool:
    """Whether ``plan``'s rows split at ``plan.branch``: it has ``trunks`` dividing its rows, and
    the branch step is a step it decodes, after its first and at or before its last free step."""
    trunks = getattr(plan, "trunks", 0)
    branch = getattr(plan, "branch", None)
    return bool(trunks) and plan.num % trunks == 0 and plan.num > trunks and branch is not None \
        and start < branch <= last_free  # fmt: skip


PREFIX_CACHE = 256  # encoded prefixes kept per model: a musician regenerates the same bars again and again


def encode_prefixes(model, plans, sizes, form_aware, device):
    """``<s>`` + each plan's prefix through the model (:meth:`MelodyLSTM.encode_prefix`, as every
    loop starts a melody); returns the logits after each row's prefix, the state and each row's last fed token.

    Each distinct prefix is encoded on its own, so its numbers never depend on the plans beside
    it, and kept in the model's cache of the last :data:`PREFIX_CACHE` (keyed on the tokens,
    positions, mode, meter and form inputs, for the current weights): regenerating bars of a
    melody again, or other bars after the same opening, does not read the kept bars through the
    model again, and gives what a fresh encode gives."""
    fed = [[plan.vocab.start] + plan.prefix for plan in plans]
    lengths = [len(f) for f in fed]
    form = None
    if form_aware and any(plan.form is not None for plan in plans):
        form = [plan.form.prefix_inputs(plan.prefix, device)[0] if plan.form is not None else None for plan in plans]
    keys = [(tuple(f), tuple(plan.positions[:n]), plan.mode_id, plan.meter_id, str(device),
             None if form is None else (b"" if form[p] is None else form[p].cpu().numpy().tobytes()))
            for p, (plan, f, n) in enumerate(zip(plans, fed, lengths))]  # fmt: skip
    cache = _prefix_cache(model)
    found = cache.get(keys)
    for p in range(len(plans)):
        if found[p] is None:  # each prefix alone: its numbers never depend on the plans beside it
            plan = plans[p]
            inputs = None if form is None else torch.zeros(1, lengths[p], 5, dtype=torch.long, device=device)
            if form is not None and form[p] is not None:
                inputs[0] = form[p]
            logits, state = model.encode_prefix(torch.tensor([fed[p]], device=device),
                                                torch.tensor([plan.positions[: lengths[p]]], device=device),
                                                torch.tensor([plan.mode_id], device=device),
                                                torch.tensor([plan.meter_id], device=device), form=inputs)  # fmt: skip
            found[p] = (logits.float(), state)
            cache.put(keys[p], found[p])
            for q in range(p + 1, len(plans)):  # the same prefix again in this call
                if found[q] is None and keys[q] == keys[p]:
                    found[q] = found[p]
    logits = torch.cat([f[0] for f in found])
    state = type(found[0][1])(*(torch.cat(parts, dim=1 if i < 2 else 0) for i, parts in enumerate(zip(*(f[1] for f in found)))))
    which = torch.repeat_interleave(torch.arange(len(plans), device=device), torch.tensor(sizes, device=device))
    last = torch.tensor([f[-1] for f in fed], device=device)[which]
    return logits[which], model.reorder_state(state, which), last


class PrefixCache:
    """The last :data:`PREFIX_CACHE` encoded prefixes of one model's weights (thread-safe: a
    server prepares requests in many threads). Entries are never handed out to be changed: the
    caller indexes them (a copy) into its own rows."""

    def __init__(self, weights: tuple):
        self.weights, self.entries, self.lock = weights, collections.OrderedDict(), threading.Lock()

    def get(self, keys: list) -> list:
        with self.lock:
            found = [self.entries.get(key) for key in keys]
            for key, hit in zip(keys, found):
                if hit is not None:
                    self.entries.move_to_end(key)
            return found

    def put(self, key, value) -> None:
        with self.lock:
            self.entries[key] = value
            while len(self.entries) > PREFIX_CACHE:
                self.entries.popitem(last=False)


def _prefix_cache(model) -> PrefixCache:
    """``model``'s prefix cache, a fresh one whenever its weights changed (training, loading)."""
    weights = model.weights_key()
    cache = model.__dict__.get("_prefix_cache")
    if cache is None or cache.weights != weights:
        cache = model.__dict__["_prefix_cache"] = PrefixCache(weights)
    return cache


ROW_WISE = (Structure, TokenMask, CopyGuard, FormControl)  # the controls merge_controls merges


def row_wise(plan) -> bool:
    """Whether ``plan`` can share a pass: each of its controls has a row-wise merge (at most one of
    a kind; a form control comes from ``plan.form``). Other plans decode alone."""
    kinds = [next((k for k in ROW_WISE if isinstance(c, k)), None) for c in plan.controls]
    counted = [k for k in kinds if k is not FormControl]
    return None not in kinds and len(counted) == len(set(counted))


def cohort_controls(plans, sizes, numbers: list[int], form_aware: bool) -> list:
    """Row-wise controls for the plans' own controls, plans numbered ``numbers`` in ctx.segments:
    structure, pitch masks and form always (neutral rows for plans without), and a copy guard
    when a plan has one. Raises TunesmithError for a control with no row-wise merge."""
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
    vocab = plans[0].vocab
    merged = [RowStructure(kinds[Structure], sizes, plans, numbers), RowMask(kinds[TokenMask], sizes, len(vocab)),
              FormRows([plan.form for plan in plans], sizes, prefixes, vocab, max(p.total_steps for p in plans), numbers)]
    if any(kinds[CopyGuard]):
        merged.append(CopyGuard.merge(kinds[CopyGuard], sizes, prefixes, numbers))
    return merged
