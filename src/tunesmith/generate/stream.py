"""Continuous batching: one decoding loop that plans join between any two steps and leave when done.

A server decoding pass by pass makes a request that arrives mid-pass wait for the whole pass,
then for its own. A :class:`RowStream` instead keeps ONE loop running: :meth:`RowStream.join`
puts a cohort of new plans' rows beside the running ones (prepared by
:func:`tunesmith.generate.rows.prepare`, in any thread: their prefixes encoded in one packed
call, their row-wise controls built, then appended to the running ones; :meth:`RowStream.add`
does both), :meth:`RowStream.step` advances every row
by one step (one batched model step for all of them), and a plan whose rows are done leaves at
once and its callback gets its :class:`~tunesmith.generate.decode.Decoded`. So a request waits
about one step to start, and its answer takes its own steps, whatever else runs.

Each plan still gives exactly what it gives decoded alone, whenever it joins: its rows read only
their own state, controls and tables (each plan counts its own steps), and it draws random
numbers only at its own free steps, from its own stream (:class:`~tunesmith.generate.sampling.JoinedRandom`).
:func:`tunesmith.generate.rows.decode_rows` is this loop with every plan joining at the start.

Rows live in *slots* (one per row of a plan's result): the tokens written, the fixed and scored
steps and the positions are per-slot tables read at each row's own step. A plan with trunks
(regenerate's ``--join-bars``) starts with one row per trunk and splits each into its candidates
at its branch step; once its free steps are behind it, rows with the same tokens go on as one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from tunesmith.errors import TunesmithError
from tunesmith.generate.controls import control_scores
from tunesmith.generate.copyguard import CopyGuard
from tunesmith.generate.decode import Decoded, _explain
from tunesmith.generate.row_controls import FormRows, as_numpy
from tunesmith.generate.rows import Cohort, RowsContext, prepare
from tunesmith.generate.sampling import DrawnAhead, JoinedRandom, SamplingError, ahead
from tunesmith.stepper import BatchStepper

COMPACT_SLOTS = 512  # slot tables are compacted once this many slots (and more than the live ones) are dead


@dataclass(eq=False)
class _Entry:
    """One plan in the stream."""

    plan: Any
    stream: torch.Generator | DrawnAhead  # drawn ahead where that gives the same numbers (sampling.ahead)
    done: Callable[[Any], None]  # gets the plan's Decoded, or the exception that stopped the loop
    number: int  # the plan's number in ctx.segments and in the row-wise controls
    start: int  # its first free step (the prefix's length)
    base: int  # its first slot
    per: int  # candidates per trunk (1: the rows never split)
    last_free: int
    rows: int  # its current rows
    t: int = 0  # steps decoded
    collapsed: bool = False
    alias: dict = field(default_factory=dict)  # slot offset dropped as a duplicate → offset decoded for it
    cancelled: bool = False  # set by another thread: leave at the next step, unanswered

    @property
    def step(self) -> int:
        return self.start + self.t


class RowStream:
    """The loop (see the module docstring). Not thread-safe: one thread calls add/step/fail."""

    def __init__(self, model, chooser, device: torch.device):
        self.model, self.chooser, self.device = model, chooser, device
        self.form_aware = bool(getattr(model, "form_inputs", False))
        self._reset()

    def _reset(self) -> None:
        self.entries: list[_Entry] = []
        self.drawn: dict[int, DrawnAhead] = {}  # id of a running plan's generator → its one DrawnAhead
        self.vocab = None
        self.stepper = self.logits = self.previous = None  # stepper: the rows' model state (BatchStepper)
        self.controls: list = []
        self.width = 0
        self.used = 0  # slots handed out
        # the bookkeeping (a few numbers per row) is NumPy on the host: a step's dozens of small
        # operations cost a microsecond each there, ten as tensors; the model's inputs go to the device
        self.slot = np.zeros(0, np.int64)  # each row's slot
        self.local = np.zeros(0, np.int64)  # each row's steps decoded (its plan's t)
        self.finished = np.zeros(0, bool)
        self.scored = np.zeros(0, np.float32)
        self.out = self.given = np.zeros((0, 0), np.int64)
        self.scoring = np.zeros((0, 0), bool)
        self.positions = np.zeros((0, 1), np.int64)
        self.final = np.zeros(0, np.float32)

    @property
    def busy(self) -> bool:
        return bool(self.entries)

    @property
    def rows(self) -> int:
        return int(self.slot.shape[0])

    def add(self, plans: list, streams: list[torch.Generator], callbacks: list[Callable[[Any], None]]) -> list[_Entry]:
        """Plans joining before the next step; ``callbacks[i]`` gets plan ``i``'s Decoded when it leaves.
        Raises TunesmithError (and adds nothing) for a plan the loop cannot take."""
        return self.join(prepare(self.model, plans, streams, callbacks, self.device))

    def join(self, cohort: Cohort) -> list[_Entry]:
        """Add a :func:`prepare`-d cohort's rows beside the running ones (the loop's thread only).
        Raises TunesmithError, changing nothing, for a cohort the running plans cannot share a pass with."""
        plans = cohort.plans
        if not plans:
            return []
        vocab = self.vocab or plans[0].vocab
        if plans[0].vocab.tokens != vocab.tokens:
            raise TunesmithError("plans decoded together must share one vocabulary")
        if len({id(c.index) for c in self.controls + cohort.controls if isinstance(c, CopyGuard)}) > 1:
            raise TunesmithError("plans decoded together must share one originality index")  # before anything changes
        if not self.entries:
            self._reset()
            self.chooser.start(sum(cohort.sizes), self.device)
        elif self.used - sum(e.plan.num for e in self.entries) > max(COMPACT_SLOTS, self.used // 2):
            self._compact()
        self.vocab = vocab
        self.chooser.end = vocab.end
        entries = []
        for p, plan in enumerate(plans):
            entries.append(_Entry(plan, self._ahead(cohort.streams[p]), cohort.callbacks[p], cohort.numbers[p],
                                  cohort.starts[p], self.used, cohort.per[p], cohort.last_free[p],
                                  cohort.sizes[p]))  # fmt: skip
            self.used += plan.num
        self._grow_tables(entries, cohort.lengths)
        slots = [e.base + r * e.per for e in entries for r in range(e.rows)]
        device = self.device
        self.slot = np.concatenate([self.slot, np.array(slots, np.int64)])
        self.local = np.concatenate([self.local, np.zeros(len(slots), np.int64)])
        self.finished = np.concatenate([self.finished, np.zeros(len(slots), bool)])
        self.scored = np.concatenate([self.scored, np.zeros(len(slots), np.float32)])
        modes = np.repeat([p.mode_id for p in plans], cohort.sizes)
        meters = np.repeat([p.meter_id for p in plans], cohort.sizes)
        if self.stepper is None:
            self.controls, self.logits, self.previous = cohort.controls, cohort.logits, cohort.previous
            self.stepper = BatchStepper(self.model, cohort.state, modes, meters, self.device)
        else:
            self._join_controls(cohort.controls, len(slots))
            self.stepper.refresh()
            self.stepper.extend(cohort.state, modes, meters)
            self.logits = torch.cat([self.logits, cohort.logits])
            self.previous = torch.cat([self.previous, cohort.previous])
        self.entries += entries
        return entries

    def _ahead(self, generator):
        """``generator`` drawn ahead (:func:`ahead`), one wrapper per generator: plans that share
        one draw from it in turn, as they would without it."""
        if id(generator) not in self.drawn:
            wrapped = ahead(generator)
            if not isinstance(wrapped, DrawnAhead):
                return generator
            self.drawn[id(generator)] = wrapped
        return self.drawn[id(generator)]

    def _grow_tables(self, entries: list[_Entry], lengths: list[int]) -> None:
        """Slot tables for the new plans (and wider ones, if a new plan is longer). The tables keep
        spare slots (twice the rows when full), so a join writes its own rows, not all of them."""
        end = self.vocab.end
        width = max([self.width] + lengths)
        first, count = entries[0].base, sum(e.plan.num for e in entries)  # the new slots
        capacity = self.out.shape[0]
        if width > self.width or first + count > capacity:
            capacity = max(2 * capacity, first + count) if first + count > capacity else capacity
            self.out, self.given = _resized(self.out, capacity, width, end), _resized(self.given, capacity, width, -1)
            self.scoring = _resized(self.scoring, capacity, width, False)
            self.positions = _resized(self.positions, capacity, width + 1, 0)
            final, self.final = self.final, np.zeros(capacity, np.float32)
            self.final[: final.shape[0]] = final
            self.width = width
        new = slice(first, first + count)
        self.out[new], self.given[new], self.scoring[new], self.positions[new], self.final[new] = end, -1, False, 0, 0.0
        for e, length in zip(entries, lengths):
            plan, rows = e.plan, slice(e.base, e.base + e.plan.num)
            self.positions[rows, : length + 1] = plan.positions[e.start : plan.total_steps + 1]
            steps = [step for step in plan.fixed if e.start <= step < plan.total_steps]
            if steps:
                at = np.array(steps) - e.start
                self.given[rows, at] = [plan.fixed[step] for step in steps]
                if plan.scored_from is not None:
                    self.scoring[rows, at] = np.array(steps) >= plan.scored_from

    def _compact(self) -> None:
        """Drop the slots of plans that left: the tables keep only the running plans' slots."""
        keep, base = [], 0
        remap = np.full(self.used, -1, np.int64)
        for e in self.entries:
            keep.append(np.arange(e.base, e.base + e.plan.num))
            remap[e.base : e.base + e.plan.num] = np.arange(base, base + e.plan.num)
            e.base, base = base, base + e.plan.num
        index = np.concatenate(keep)
        self.out, self.given, self.scoring = self.out[index], self.given[index], self.scoring[index]
        self.positions, self.final = self.positions[index], self.final[index]
        self.slot, self.used = remap[self.slot], base

    def _join_controls(self, cohort: list, new_rows: int) -> None:
        """Append the joining plans' row-wise controls to the running ones (kinds in a fixed order:
        structure, mask, form, copy guard; a guard only one side has gets a free side)."""
        running = self.controls
        guard_old = next((c for c in running if isinstance(c, CopyGuard)), None)
        guard_new = next((c for c in cohort if isinstance(c, CopyGuard)), None)
        if guard_old is None and guard_new is not None:
            guard_old = CopyGuard.merge([None], [self.rows], [[]], ids=[-1], base=guard_new)
            running = running + [guard_old]
        elif guard_new is None and guard_old is not None:
            guard_new = CopyGuard.merge([None], [new_rows], [[]], ids=[-1], base=guard_old)
            cohort = cohort + [guard_new]
        for old, new in zip(running, cohort, strict=True):
            old.extend(new)
        self.controls = running

    def cancel(self, entries: list[_Entry]) -> None:
        """Drop ``entries`` at the next step without answering them (their requests gave up)."""
        for e in entries:
            e.cancelled = True

    def fail(self, exc: BaseException) -> None:
        """Answer every running plan with ``exc`` and empty the stream (a step raised it)."""
        entries = self.entries
        self._reset()
        for e in entries:
            if isinstance(e.stream, DrawnAhead):
                e.stream.settle()  # its generator left where its draws leave it
            if not e.cancelled:
                e.done(exc)

    def step(self) -> None:
        """Advance every row by one step; plans that are done leave and are answered."""
        if not self.entries:
            return
        vocab, device = self.vocab, self.device
        segments, a = [], 0
        for e in self.entries:
            segments.append((e.number, a, a + e.rows, e.step, e.plan.total_steps))
            a += e.rows
        logits, finished = self.logits, self.finished
        given, free = [], []  # plans whose step is fixed (kept bars, fixed notes) and those that choose
        for e, seg in zip(self.entries, segments):
            (given if e.step in e.plan.fixed else free).append((e, seg))
        if given:
            if not np.isfinite(as_numpy(logits)).all():
                raise TunesmithError(f"the model gave NaN or infinite scores at step {given[0][1][3]}: the checkpoint is broken")
            column = self.given[self.slot, self.local]
            chosen = column.copy()  # the free rows' -1 are overwritten below
            if any(e.plan.scored_from is not None and e.step >= e.plan.scored_from for e, _ in given):
                log_probs = as_numpy(torch.log_softmax(logits, dim=-1))[np.arange(len(column)), np.maximum(column, 0)]
                self.scored += np.where(self.scoring[self.slot, self.local] & ~finished, log_probs, np.float32(0.0))
        else:
            chosen = np.empty(finished.shape[0], np.int64)
        if free:
            first = self.entries[0].plan
            step0 = segments[0][3]
            position0 = first.positions[step0]
            ctx = RowsContext(step0, position0, first.bar_of_step[step0], position0 == 0, segments[0][4],
                              finished.shape[0], device, vocab, self.previous, segments)  # fmt: skip
            scores = control_scores(self.controls, ctx, logits)
            streams = JoinedRandom([(e.stream, seg[2] - seg[1]) for e, seg in free])
            if len(free) == len(segments):
                index = None
                pick, done, raw = scores, finished, logits
            else:
                index = np.concatenate([np.arange(seg[1], seg[2]) for _, seg in free])
                at = torch.from_numpy(index).to(device)
                pick, done, raw = scores[at], finished[index], logits[at]
            try:
                picked, _ = self.chooser.choose(pick, torch.from_numpy(done).to(device), streams)
            except SamplingError:
                _explain(pick, raw, free[0][1][3])
                raise
            if index is None:
                chosen = as_numpy(picked)
            else:
                chosen[index] = as_numpy(picked)
        chosen = np.where(finished, vocab.end, chosen)  # a finished melody only repeats its end
        for control in self.controls:
            control.advance(chosen)
        self.out[self.slot, self.local] = chosen
        finished = self.finished = finished | (chosen == vocab.end)
        # each plan's rows all ended (every plan has a row: its segment starts are increasing)
        ended = np.logical_and.reduceat(finished, [seg[1] for seg in segments]).tolist()
        leaving = [e for e, (_, _, _, step, total), end in zip(self.entries, segments, ended)
                   if e.cancelled or step + 1 == total or end]  # fmt: skip
        for e in leaving:
            _, a, b, _, _ = segments[self.entries.index(e)]
            self.final[self.slot[a:b]] = self.scored[a:b]
        dropped = self._duplicates(segments, leaving)
        splitting = [e for e in self.entries if e.per > 1 and e not in leaving and e.step + 1 == e.plan.branch]
        for e in self.entries:
            e.t += 1
        if leaving or dropped or splitting:
            self._rearrange(segments, leaving, dropped, splitting)
            chosen = chosen[self._keep]
            self._finish(leaving)
            if not self.entries:
                self._reset()
                return
        self.local += 1
        form = None
        if self.form_aware:
            form = next(c for c in self.controls if isinstance(c, FormRows)).inputs()
        logits = self.stepper.step(chosen, self.positions[self.slot, self.local], form)
        self.logits, self.previous = logits.float(), torch.from_numpy(chosen).to(device)

    def _duplicates(self, segments, leaving) -> dict[int, int]:
        """Rows to drop now: in each plan whose free steps are all behind it, every row whose
        tokens so far repeat an earlier row's (it would take the same fixed tokens, state and
        scores to the end); maps each such current row to that earlier row."""
        dropped: dict[int, int] = {}
        for e, (_, a, b, step, _) in zip(self.entries, segments):
            if e.collapsed or e in leaving or step < e.last_free or b - a < 2:
                continue
            e.collapsed = True
            seen: dict[tuple, int] = {}
            for r, history in enumerate(self.out[self.slot[a:b], : e.t + 1].tolist(), start=a):
                rep = seen.setdefault(tuple(history), r)
                if rep != r:
                    dropped[r] = rep
        return dropped

    def _rearrange(self, segments, leaving, dropped, splitting) -> None:
        """Rows after plans left, duplicates were dropped and trunks split (``self._keep``: the old
        row of each new row)."""
        keep, slots = [], []
        for e, (_, a, b, _, _) in zip(self.entries, segments):
            if e in leaving:
                continue
            rows = [r for r in range(a, b) if r not in dropped]
            for r in range(a, b):
                if r in dropped:
                    e.alias[int(self.slot[r]) - e.base] = int(self.slot[dropped[r]]) - e.base
            if e in splitting:  # each trunk row becomes its candidates, which share its tokens so far
                for r in rows:
                    s = int(self.slot[r])
                    self.out[s + 1 : s + e.per, : e.t] = self.out[s, : e.t]
                    keep += [r] * e.per
                    slots += range(s, s + e.per)
                e.rows = len(rows) * e.per
            else:
                keep += rows
                slots += [int(self.slot[r]) for r in rows]
                e.rows = len(rows)
        index = self._keep = np.array(keep, np.int64)
        self.slot = np.array(slots, np.int64)
        self.local, self.finished, self.scored = self.local[index], self.finished[index], self.scored[index]
        on_device = torch.from_numpy(index).to(self.device)
        self.stepper.reorder(index)
        for control in self.controls:
            control.reorder(on_device)
        if leaving:
            gone = [e.number for e in leaving]
            for control in self.controls:
                control.forget(gone)
        self.entries = [e for e in self.entries if e not in leaving]

    def _finish(self, leaving: list[_Entry]) -> None:
        """Answer the plans that left with their rows (prefix + tokens, scores)."""
        for e in leaving:
            if isinstance(e.stream, DrawnAhead) and not any(other.stream is e.stream for other in self.entries):
                e.stream.settle()  # its generator left where its draws leave it, once no running plan draws from it
                self.drawn.pop(id(e.stream.generator), None)
            if e.cancelled:
                continue
            plan, base = e.plan, e.base
            for dup, rep in e.alias.items():  # a dropped row took the same tokens and scores as its representative
                self.out[base + dup], self.final[base + dup] = self.out[base + rep], self.final[base + rep]
            length = plan.total_steps - e.start
            ids = []
            for row in self.out[base : base + plan.num, :length].tolist():
                ids.append(list(plan.prefix) + (row[: row.index(self.vocab.end) + 1] if self.vocab.end in row else row))
            e.done(Decoded(ids, self.final[base : base + plan.num].tolist()))


def _resized(table: np.ndarray, rows: int, columns: int, fill) -> np.ndarray:
    """``table`` [r, c] at the top left of a new ``[rows, columns]`` array of ``fill`` (pure function)."""
    resized = np.full((rows, columns), fill, table.dtype)
    resized[: table.shape[0], : table.shape[1]] = table
    return resized
