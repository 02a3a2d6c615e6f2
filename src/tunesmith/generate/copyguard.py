"""``CopyGuard``: a decoding control that never lets a melody copy more than ``max_copy`` notes
of a training song (Pachet & Roy's max-order idea, on the originality index's symbols).

A note's symbol is (interval from the previous sounding note, length in steps), so a note is
only fixed when the next onset (a pitch, ``r`` or ``</s>``) arrives, or when the last step is
taken. At each step the guard knows, per row, the automaton state after the fixed notes (and
the length ``m`` of the copy ending there) and the pending note (its interval and steps so far):

- ``_`` lengthens the pending note; an onset fixes it at its current length, then starts one.
- Fixing a note makes the copy longer than ``max_copy`` exactly when ``m == max_copy`` and the
  note's symbol continues the copy in the automaton; such tokens are forbidden.
- Look-ahead keeps a way out: a token is allowed only if the note it leaves pending can still be
  fixed without overrunning before the melody's last step (some reachable length breaks the
  copy). From such a state a safe token always exists unless every one-step onset continues the
  copy, which no real corpus allows; if it ever happens (or another control forbids the way out),
  the guard steps aside for that row, allows every token and counts it in ``fallbacks`` — the
  a-posteriori check (:func:`describe_copy`) then reports the overrun honestly.

The measure is exactly the one of ``tunesmith.originality`` (what ``evaluate`` reports), on the
melody as decoded from its tokens, primer included. Per step and row the work is O(1) dict look-ups,
plus a scan of the automaton's out-edges for the few rows sitting at ``max_copy``.
"""

from __future__ import annotations

from typing import Any

import torch

from tunesmith.encoding import Vocabulary, decode_tokens
from tunesmith.errors import TunesmithError
from tunesmith.originality import OriginalityIndex, entry_for_checkpoint, entry_of, index_from_entry
from tunesmith.originality.automaton import FIRST_KEY, INTERVAL_OFFSET, REST_KEY, STEPS_RANGE, interval_key, symbol_code
from tunesmith.song import Song


WALKS_KEPT = 1 << 16  # automaton steps a guard remembers (then it starts afresh)


class CopyGuard:
    """A ``generate.controls.Control``: forbid tokens that would copy more than ``max_copy`` notes.

    ``allowed`` reads ``ctx.step`` and ``ctx.total_steps`` (the melody's last token is at
    ``total_steps - 1``) and assumes the steps after it are free; a token the plan fixes later
    (kept bars) is followed through ``advance`` but cannot be steered, so a copy it completes is
    reported by :func:`describe_copy`, not prevented.
    """

    yields = True  # where the other controls leave a row no other way, the guard steps aside (controls.control_scores)

    def __init__(self, index: OriginalityIndex, max_copy: int, vocab: Vocabulary):
        if max_copy < 1:
            raise TunesmithError(f"--max-copy must be >= 1 note, got {max_copy!r}")
        self.index, self.max_copy, self.vocab = index, int(max_copy), vocab
        self.automaton = index.automaton
        self.walks: dict[tuple[int, int, int], tuple[int, int]] = {}  # automaton.walk's answers, remembered
        self.pitch_of = {token_id: pitch for pitch, token_id in zip(vocab.pitches, vocab.pitch_ids, strict=True)}
        self.onset_ids = torch.tensor([vocab.end, vocab.rest, *vocab.pitch_ids])
        self.fallbacks = 0  # (row, step) pairs where the guard had to allow everything
        self.limits = self.row_plan = None  # per row, when merged over several plans (see merge)

    def start(self, rows: int, prefix: list[int]) -> None:
        """Reset for ``rows`` melodies that all begin with the model-key tokens ``prefix``."""
        self.rows, self.fallbacks = rows, 0
        self.limits = self.row_plan = None  # one limit and one plan for every row
        one = self._prefix_row(prefix, self.max_copy)
        for name in ("state", "matched", "key", "steps", "last", "longest", "done"):
            setattr(self, name, [getattr(one, name)] * rows)

    def _prefix_row(self, prefix: list[int], limit: int) -> _Row:
        """The guard state after ``prefix``; a prefix that already copies more than ``limit`` is an error."""
        one = _Row()
        for token in prefix:
            self._take(one, token)
        if one.longest > limit:
            song = Song(notes=decode_tokens(self.vocab.tokens_of(prefix)))
            tune = self.index.describe(song)["tune"]
            raise TunesmithError(f"the primer already shares {one.longest} notes with the training tune {tune!r}, "
                                 f"more than --max-copy {limit}: shorten the primer or raise --max-copy")  # fmt: skip
        return one

    @classmethod
    def merge(cls, guards: list[CopyGuard | None], sizes: list[int], prefixes: list[list[int]],
              ids: list[int] | None = None, base: CopyGuard | None = None) -> CopyGuard:  # fmt: skip
        """One guard over the rows of several plans decoded as one pass (``sizes[i]`` rows of plan
        ``i``, which begin with ``prefixes[i]``), each plan with its own ``max_copy``; the rows of
        a plan without a guard (None) are left free. Its ``allowed`` reads each plan's step and
        length from ``ctx.segments`` (``ids``: the plans' numbers there, default 0, 1, …). The
        guards must share one index (one model); ``base`` gives it when every guard is None."""
        ids = list(range(len(guards))) if ids is None else ids
        base = next((g for g in guards if g is not None), base)
        if any(g is not None and g.index is not base.index for g in guards):
            raise TunesmithError("plans decoded together must share one originality index")
        merged = cls(base.index, base.max_copy, base.vocab)
        merged.rows, merged.fallbacks, merged.limits, merged.row_plan = sum(sizes), 0, [], []
        for name in ("state", "matched", "key", "steps", "last", "longest", "done"):
            setattr(merged, name, [])
        for plan, (guard, size, prefix) in enumerate(zip(guards, sizes, prefixes)):
            one = merged._prefix_row(prefix, guard.max_copy) if guard is not None else _Row()
            one.done = one.done or guard is None
            for name in ("state", "matched", "key", "steps", "last", "longest", "done"):
                getattr(merged, name).extend([getattr(one, name)] * size)
            merged.limits += [guard.max_copy if guard is not None else 0] * size
            merged.row_plan += [ids[plan]] * size
        return merged

    _ROW_STATE = ("state", "matched", "key", "steps", "last", "longest", "done", "limits", "row_plan")

    def extend(self, other: CopyGuard) -> None:
        """Append the rows of ``other`` (a merged guard over plans joining a running stream)."""
        if other.index is not self.index:
            raise TunesmithError("plans decoded together must share one originality index")
        for name in self._ROW_STATE:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.rows += other.rows
        self.fallbacks += other.fallbacks

    def forget(self, ids: list[int]) -> None:
        pass

    def _viable(self, state: int, matched: int, key: int, steps: int, spare: int, limit: int) -> bool:
        """Can a pending note (``key``, ``steps`` so far) still be fixed without overrunning ``limit``,
        with ``spare`` more steps to lengthen it?"""
        if matched < limit:
            return True
        has = self.automaton.has
        return any(not has(state, symbol_code(key, length)) for length in range(steps, steps + spare + 1))

    def allowed(self, ctx: Any) -> torch.Tensor | None:
        """Bool ``[rows, V]`` (True = allowed), or None when no row is near ``max_copy``."""
        left = ctx.total_steps - ctx.step  # tokens still to come, this one included
        limit = self.max_copy
        if self.limits is None:  # one plan: one limit
            # A row whose copy is two or more notes short of the limit cannot overrun with this token
            # and the next note: only rows at limit - 1 or more need looking at.
            rows = [r for r, matched in enumerate(self.matched) if matched >= limit - 1]
        else:  # several plans: each row its own plan's limit and steps left
            lefts = {segment[0]: segment[4] - segment[3] for segment in ctx.segments}
            rows = [r for r, matched in enumerate(self.matched) if matched >= self.limits[r] - 1]
        no_hold, no_onset, no_ids, free = [], [], [], []
        for r in rows:
            if self.done[r]:
                continue
            if self.limits is not None:
                limit, left = self.limits[r], lefts[self.row_plan[r]]
            state, matched, key, steps, last = self.state[r], self.matched[r], self.key[r], self.steps[r], self.last[r]
            hold_ok = self._viable(state, matched, key or REST_KEY, steps + 1 if key else 1, left - 1, limit)
            fixed = symbol_code(key, steps) if key else None
            onset_ok = not key or matched < limit or not self.automaton.has(state, fixed)
            banned: list[int] = []
            if onset_ok:
                new_state, new_matched = self._walk(state, matched, fixed) if key else (state, matched)
                if new_matched >= limit:
                    banned = self._banned_onsets(new_state, new_matched, last, left - 1, limit)
            pitches_left = len(self.pitch_of) - sum(1 for i in banned if i in self.pitch_of)
            if not (hold_ok or (onset_ok and (self.vocab.rest not in banned or pitches_left))):
                self.fallbacks += 1  # no way out: step aside rather than leave the row nothing
                free.append(r)
                continue
            if not hold_ok:
                no_hold.append(r)
            if not onset_ok:
                no_onset.append(r)
            no_ids += [(r, token_id) for token_id in banned]
        if not (no_hold or no_onset or no_ids):
            return None
        mask = torch.ones(self.rows, len(self.vocab), dtype=torch.bool)
        mask[no_hold, self.vocab.hold] = False
        if no_onset:
            mask[torch.tensor(no_onset)[:, None], self.onset_ids[None, :]] = False
        if no_ids:
            where = torch.tensor(no_ids)
            mask[where[:, 0], where[:, 1]] = False
        return mask.to(ctx.device)

    def _banned_onsets(self, state: int, matched: int, last: int | None, spare: int, limit: int) -> list[int]:
        """Token ids whose new note could not be fixed without overrunning (the copy is at the limit)."""
        banned = []
        for code in self.automaton.out(state):
            if code < 0 or code % STEPS_RANGE != 1:
                continue  # a song separator, or a note longer than one step: one step is always safe then
            key = code // STEPS_RANGE
            if self._viable(state, matched, key, 1, spare, limit):
                continue
            if key == REST_KEY:
                banned.append(self.vocab.rest)
            elif key == FIRST_KEY:
                if last is None:  # the melody's first pitch: every pitch makes the same symbol
                    banned += self.vocab.pitch_ids
            elif last is not None:
                token = str(last + key - INTERVAL_OFFSET)
                if token in self.vocab:
                    banned.append(self.vocab.index[token])
        return banned

    def bias(self, ctx: Any) -> None:
        """The guard only forbids; it never reweights."""
        return None

    def advance(self, chosen: torch.Tensor) -> None:
        """Take each row's token ``chosen`` [rows]."""
        hold, key, steps, done = self.vocab.hold, self.key, self.steps, self.done
        row = _Row()
        for r, token in enumerate(chosen.tolist()):
            if done[r]:
                continue
            if token == hold and key[r]:  # the common case: a note goes on
                steps[r] += 1
                continue
            row.load(self, r)
            self._take(row, token)
            row.store(self, r)

    def _walk(self, state: int, matched: int, symbol: int) -> tuple[int, int]:
        """``automaton.walk``, remembered: rows of a pass keep taking the same few steps (a tune's
        common openings and figures), and a remembered step costs one dict look-up."""
        key = (state, matched, symbol)
        walked = self.walks.get(key)
        if walked is None:
            if len(self.walks) >= WALKS_KEPT:
                self.walks.clear()
            walked = self.walks[key] = self.automaton.walk(state, matched, symbol)
        return walked

    def _take(self, row: _Row, token: int) -> None:
        """Apply one token to one row's state: lengthen the pending note, or fix it and start one."""
        vocab = self.vocab
        if token == vocab.hold:
            if row.key:
                row.steps += 1
            else:  # a leading hold decodes as a rest
                row.key, row.steps = REST_KEY, 1
            return
        if token not in self.pitch_of and token not in (vocab.rest, vocab.end):
            return  # <s>/<pad> are never generated; they carry no note
        if row.key:
            row.state, row.matched = self._walk(row.state, row.matched, symbol_code(row.key, row.steps))
            row.longest = max(row.longest, row.matched)
        row.key, row.steps = 0, 0
        if token == vocab.end:
            row.done = True
        elif token == vocab.rest:
            row.key, row.steps = REST_KEY, 1
        else:
            pitch = self.pitch_of[token]
            row.key, row.steps, row.last = interval_key(pitch, row.last), 1, pitch

    def reorder(self, index: torch.Tensor) -> None:
        """Keep rows ``index`` (beam search)."""
        keep = index.tolist()
        names = ("state", "matched", "key", "steps", "last", "longest", "done")
        for name in names + (("limits", "row_plan") if self.limits is not None else ()):
            values = getattr(self, name)
            setattr(self, name, [values[i] for i in keep])
        self.rows = len(keep)


class _Row:
    """One row's guard state while a token is taken."""

    __slots__ = ("state", "matched", "key", "steps", "last", "longest", "done")

    def __init__(self) -> None:
        self.state = self.matched = self.key = self.steps = self.longest = 0
        self.last: int | None = None
        self.done = False

    def load(self, guard: CopyGuard, r: int) -> None:
        self.state, self.matched, self.key, self.steps = guard.state[r], guard.matched[r], guard.key[r], guard.steps[r]
        self.last, self.longest, self.done = guard.last[r], guard.longest[r], guard.done[r]

    def store(self, guard: CopyGuard, r: int) -> None:
        guard.state[r], guard.matched[r], guard.key[r], guard.steps[r] = self.state, self.matched, self.key, self.steps
        guard.last[r], guard.longest[r], guard.done[r] = self.last, self.longest, self.done


def load_index(checkpoint: Any, progress: bool = False) -> tuple[OriginalityIndex, int]:
    """The originality index of a loaded checkpoint (a ``Checkpoint`` or its dict) and its default ``max_copy``.

    Read from ``extra["originality"]`` (see ``python -m tunesmith.originality``); a checkpoint
    without one has it rebuilt from the training split its config names (the corpus cache makes
    that a matter of seconds once the corpus has been prepared). Raises TunesmithError naming the
    fix when neither works.
    """
    entry = entry_of(checkpoint)
    if entry is None:
        try:
            entry = entry_for_checkpoint(checkpoint, progress=progress)
        except TunesmithError as exc:
            raise TunesmithError(f"this model has no originality index and its training corpus cannot be read "
                                 f"({exc}); add one with: python -m tunesmith.originality MODEL.pt") from None  # fmt: skip
    return index_from_entry(entry), int(entry["held_out"]["max_copy"])


def describe_copy(index: OriginalityIndex, song: Song, max_copy: int | None = None) -> dict:
    """For a melody's JSON and the CLI table: its longest stretch shared with the corpus and the
    nearest training tune (``OriginalityIndex.describe``), plus ``max_copy`` and whether it is exceeded."""
    described = index.describe(song)
    if max_copy is not None:
        described.update(max_copy=max_copy, exceeds=described["notes"] > max_copy)
    return described


def copy_cell(described: dict | None) -> str:
    """One table cell for :func:`describe_copy`'s result: "7 notes · Der Mai (bars 3-4)"; "—" when unknown."""
    if not described:
        return "—"
    if not described["notes"]:
        return "0 notes"
    first, last = described["tune_bars"]
    bars = f"bar {first}" if first == last else f"bars {first}-{last}"
    return f"{described['notes']} notes · {described['tune']} ({bars})"
