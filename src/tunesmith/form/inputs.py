"""Form inputs: where each step stands in its phrase and song, and what the form says it restates.

The melody model (with ``model.form_inputs``) reads five small integers per step it predicts,
computed here — for training from a song's recovered phrases and their letters
(:func:`song_form_rows`), for generation from the plan's form (:class:`FormTrack`) — so both
see exactly the same thing:

``to_end``
    steps from this step to the end of its phrase, 1 + min(steps, ``MAX_TO_END``)
    (1 = the step that ends the song, i.e. where ``</s>`` is predicted);
``left``
    phrases after this one, 1 + min(count, ``MAX_LEFT``);
``role``
    1 + 2·kind + last, kind: 0 a new letter, 1 a restatement (same letter and primes as an
    earlier phrase), 2 a variant (same letter, other primes); last: 1 in the song's last phrase;
``lookback``, ``lookback_sounding``
    the token (and the pitch or rest sounding under it) at the same offset in the earlier
    phrase this one restates — the last earlier phrase with the same label, else the last with
    the same letter — and ``<pad>`` where the phrase restates nothing or is longer than it.

All five are 0 where the form is unknown (0 is ``<pad>`` for the two token inputs), which is
how a model trained with hidden forms (``train.form_unknown_share``) generates without one.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import repeat
from typing import NamedTuple

from tunesmith.form.labels import label_phrases
from tunesmith.form.phrases import song_phrases
from tunesmith.song import Song

MAX_TO_END = 48  # steps to the phrase's end are exact up to this (two 6/8 bars of 16ths)
MAX_LEFT = 6  # phrases still to come are counted up to this
N_TO_END = MAX_TO_END + 2  # classes of each input (0 = unknown)
N_LEFT = MAX_LEFT + 2
N_ROLE = 7
WIDTH = 5  # integers per step


class StepForm(NamedTuple):
    """The form plan of one step: the static inputs and the step its lookback reads (−1: none).
    A named tuple: a plan holds one per step and is made for every request a server plans."""

    to_end: int
    left: int
    role: int
    source: int


def plan_steps(total_steps: int, phrase_starts: Sequence[int], labels: Sequence[str]) -> list[StepForm]:
    """The form plan of steps ``0..total_steps`` (the last is where the song's end is predicted).

    ``phrase_starts`` begin with 0 and ``labels`` give each phrase's letter ("A", "A'", "B").
    """
    starts = list(phrase_starts) or [0]
    if len(labels) != len(starts):
        raise ValueError(f"{len(starts)} phrases but {len(labels)} labels")
    bounds = starts + [total_steps]
    sources: list[int | None] = []
    kinds: list[int] = []
    for i, label in enumerate(labels):
        letter = label.rstrip("'")
        same = [j for j in range(i) if labels[j] == label]
        kin = [j for j in range(i) if labels[j].rstrip("'") == letter]
        sources.append(same[-1] if same else kin[-1] if kin else None)
        kinds.append(1 if same else 2 if kin else 0)
    steps = []
    n = len(starts)
    for i in range(n):
        start, end = bounds[i], bounds[i + 1]
        last = i == n - 1
        role = 1 + 2 * kinds[i] + int(last)
        src = sources[i]
        here = range(start, end + (1 if last else 0))
        to_end = [1 + min(end - t, MAX_TO_END) for t in here]
        if src is None:
            source = [-1] * len(here)
        else:  # the step at the same offset in the restated phrase, -1 past its end
            shift, limit = bounds[src] - start, bounds[src + 1]
            source = [t + shift if t + shift < limit else -1 for t in here]
        steps += map(StepForm, to_end, repeat(1 + min(n - 1 - i, MAX_LEFT), len(here)), repeat(role, len(here)), source)
    return steps


def sounding_ids(ids: Sequence[int], hold_id: int) -> list[int]:
    """The pitch (or rest) token sounding at each step of a body of token ids."""
    result, current = [], hold_id
    for token in ids:
        current = current if token == hold_id else token
        result.append(current)
    return result


def rows(plan: Sequence[StepForm], ids: Sequence[int], hold_id: int, pad_id: int = 0) -> list[list[int]]:
    """``[to_end, left, role, lookback, lookback_sounding]`` of every planned step, from the body ids."""
    sounding = sounding_ids(ids, hold_id)
    out = []
    for step in plan:
        if 0 <= step.source < len(ids):
            out.append([step.to_end, step.left, step.role, ids[step.source], sounding[step.source]])
        else:
            out.append([step.to_end, step.left, step.role, pad_id, pad_id])
    return out


def song_form(song: Song) -> tuple[list[int], list[str]]:
    """A song's phrase starts and form letters (recorded phrases, else the rule's)."""
    phrases = song_phrases(song)
    return [p.start for p in phrases], label_phrases(song, phrases)


def song_form_rows(song: Song, ids: Sequence[int], hold_id: int, pad_id: int = 0) -> list[list[int]]:
    """Form inputs of steps ``0..len(ids)`` of a corpus song whose body token ids are ``ids``."""
    starts, labels = song_form(song)
    return rows(plan_steps(len(ids), starts, labels), ids, hold_id, pad_id)


class FormTrack:
    """Form inputs during generation: the plan is fixed, the lookback reads the melody so far."""

    def __init__(self, plan: Sequence[StepForm], hold_id: int, pad_id: int = 0):
        self.plan = list(plan)
        self.hold_id, self.pad_id = hold_id, pad_id
        self.ids: list[int] = []
        self.sounding: list[int] = []

    def row(self, step: int) -> list[int]:
        """Inputs for predicting body step ``step`` (all 0 past the plan's end)."""
        if step >= len(self.plan):
            return [0] * WIDTH
        plan = self.plan[step]
        if 0 <= plan.source < len(self.ids):
            return [plan.to_end, plan.left, plan.role, self.ids[plan.source], self.sounding[plan.source]]
        return [plan.to_end, plan.left, plan.role, self.pad_id, self.pad_id]

    def push(self, token_id: int) -> None:
        """Record the token chosen for the next step."""
        sounding = self.sounding[-1] if (token_id == self.hold_id and self.sounding) else token_id
        self.ids.append(token_id)
        self.sounding.append(sounding)


def corpus_forms(songs: Sequence[Song]) -> dict[str, dict[str, int]]:
    """The corpus's forms with phrase lengths, counted per ``"meter mode"`` (plain data for a
    checkpoint's ``extra["forms"]``, from which generation draws its default form)."""
    from tunesmith.form.stats import form_distribution

    return {f"{meter} {mode}": dict(sorted(counter.items())) for (meter, mode), counter in
            sorted(form_distribution(list(songs)).items())}  # fmt: skip


def song_ends(song: Song) -> tuple[int, int]:
    """``(pickup, last)``: a song's steps before its first bar line and in its last bar (a last bar
    cut short, as after a pickup or a closing note shorter than the bar, has ``last`` < the bar)."""
    from tunesmith.song import bar_steps

    bar = bar_steps(song.meter, song.steps_per_quarter)
    pickup = song.bar_starts[0] if song.bar_starts and 0 < song.bar_starts[0] < bar else 0
    last = (song.total_steps - pickup) % bar
    return pickup, last or bar


def corpus_pickups(songs: Sequence[Song]) -> dict[str, dict[str, int]]:
    """How the corpus's songs begin and end, counted per ``"meter mode"``: ``"pickup last"``
    (:func:`song_ends`, in steps) → songs (plain data for a checkpoint's ``extra["pickups"]``,
    from which generation draws a melody's upbeat and last bar with its form)."""
    from collections import Counter

    counts: dict[str, Counter] = {}
    for song in songs:
        try:
            pickup, last = song_ends(song)
        except (ValueError, ZeroDivisionError):  # a meter without regular bars
            continue
        counts.setdefault(f"{song.meter} {song.mode}", Counter())[f"{pickup} {last}"] += 1
    return {key: dict(sorted(counter.items())) for key, counter in sorted(counts.items())}


def forms_distribution(plain: dict[str, dict[str, int]]) -> dict:
    """:func:`corpus_forms`' plain data back as ``form_distribution``'s ``{(meter, mode): Counter}``."""
    from collections import Counter

    return {tuple(key.split(" ", 1)): Counter(value) for key, value in plain.items()}


def pickups_distribution(plain: dict[str, dict[str, int]]) -> dict:
    """:func:`corpus_pickups`' plain data back as ``{(meter, mode): Counter({(pickup, last): songs})}``."""
    from collections import Counter

    return {tuple(key.split(" ", 1)): Counter({tuple(int(x) for x in k.split()): n for k, n in value.items()})
            for key, value in plain.items()}  # fmt: skip
