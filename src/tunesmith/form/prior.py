"""A prior over song forms: the first stage of tunesmith's two-stage generative process.

tunesmith composes a form first (phrase lengths and letters), then the notes given the form.
A form-aware model therefore scores p(melody | form), and a melody's probability under the
whole process is at least

    p(melody) ≥ p_prior(form(melody)) · p_model(melody | form(melody)),

so ``−log2`` of the right side (the *two-stage code length*) is an honest upper bound on the
melody's code length. This module gives ``p_prior``: fitted on training songs only, it assigns
every form a finite probability, and the probabilities of all forms sum to 1.

What is coded (:class:`FormCode`) is exactly what the model's form inputs
(:func:`tunesmith.form.inputs.song_form_rows`) derive from: the phrase lengths in steps (their
sum is the song's length) and the phrase labels; the meter's bar length and the pickup are
given (the model is conditioned on them through its mode/meter and step-in-bar inputs, with or
without a form). A form is coded in three parts, each a proper distribution:

1. **count** ``n`` of phrases: Witten–Bell interpolation of the counts for the bar length,
   backed off to all songs' counts, backed off to ``1 / (n (n + 1))`` (sums to 1 over n ≥ 1);
2. **labels** given ``n``, phrase by phrase: at each phrase the valid continuations — a new
   letter, a restatement of an earlier label, a new variant (one more prime) of an earlier
   letter — each weighted by its class (what the previous phrase did; new, restate or vary; how
   recently the letter was last used; whether it continues a restated pair; the phrase's place:
   first phrases, last phrase), normalised over the valid set, then Witten–Bell interpolated
   with how often each label followed the same earlier labels in songs of ``n`` phrases. Only
   label strings the labeller can produce get mass, and they sum to 1 for each ``n``;
3. **lengths**, phrase by phrase given the labels, on the meter's grid: each phrase boundary is
   a bar line less an *upbeat* (0 ≤ upbeat < bar; the song's start is the first bar line less
   the pickup), so a phrase's length is ``bars · bar + upbeat_before − upbeat_after``. A phrase
   codes the upbeat of the boundary that ends it — Witten–Bell interpolation over (bar length)
   → + the phrase's own upbeat → + the relation of the next phrase and the upbeat of the phrase
   it restates or varies → + pickup (at the song's end: (bar length) → + pickup → + the last
   phrase's own upbeat), backed off to uniform — then its number of bars ``k``: a phrase with a reference
   (the phrase it restates or varies, as in :func:`~tunesmith.form.inputs.plan_steps`, else
   the previous phrase) first codes whether it spans as many bars (smoothed rates per relation
   and slot); otherwise (and for the first phrase) ``k`` comes from Witten–Bell interpolation
   over (bar length) → + slot → + the previous phrase's bars → + the first phrase's → + the
   parity of the bars so far, backed off to ``1 / ((k + 1)(k + 2))``, without the reference's
   ``k``. Pairs giving a length ≤ 0 are left out and the rest renormalised, so the lengths of a
   phrase sum to 1.

Each choice was made on the calibration fifth of erk's training songs (prior fitted on the
other training songs), never on validation songs: there the previous design (labels by exact
strings, lengths in steps) cost 18.9 bits per song, this one 17.4
(``benchmarks/results/form-prior.md``).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from tunesmith.song import Song, bar_steps

RECENT = 3  # letters used further back than this share one recency class


@dataclass(frozen=True)
class FormCode:
    """What the prior codes for one song: ``lengths`` of its phrases in steps and their
    ``labels`` ("A", "A'", "B"…), given the meter's ``bar`` length and the ``pickup`` in steps."""

    bar: int
    pickup: int
    lengths: tuple[int, ...]
    labels: tuple[str, ...]


def song_form_code(song: Song) -> FormCode:
    """The form the model's inputs are computed from (:func:`tunesmith.form.inputs.song_form`)."""
    from tunesmith.form.inputs import song_form

    starts, labels = song_form(song)
    bounds = [*starts, song.total_steps]
    try:
        bar = bar_steps(song.meter, song.steps_per_quarter)
    except (ValueError, ZeroDivisionError):  # as tunesmith.training.data.song_positions
        bar = 4 * song.steps_per_quarter
    pickup = song.bar_starts[0] if song.bar_starts and song.bar_starts[0] > 0 else 0
    return FormCode(bar, pickup, tuple(b - a for a, b in zip(bounds, bounds[1:])), tuple(labels))


def universal(k: int) -> float:
    """``1 / (k (k + 1))``: a distribution over k ≥ 1 that sums to 1 (the last back-off)."""
    return 1.0 / (k * (k + 1)) if k >= 1 else 0.0


def witten_bell(counts: Counter | None, backoff: float, value: object) -> float:
    """Witten–Bell interpolation ``(c(v) + T·p_backoff(v)) / (N + T)``; the back-off alone
    where the context was never seen. Normalised whenever the back-off is."""
    if not counts:
        return backoff
    total, types = sum(counts.values()), len(counts)
    return (counts.get(value, 0) + types * backoff) / (total + types)


def _letter(label: str) -> str:
    return label.rstrip("'")


def _slot(index: int, n: int) -> str:
    return "first" if index == 0 else "last" if index == n - 1 else "inner"


def reference(labels: Sequence[str], index: int) -> tuple[str, int | None]:
    """The relation of phrase ``index`` (restate / vary / none) and the phrase its length is
    compared with: the last earlier phrase with the same label, else the same letter, else the
    previous phrase (``None`` for the first)."""
    same = [j for j in range(index) if labels[j] == labels[index]]
    if same:
        return "restate", same[-1]
    kin = [j for j in range(index) if _letter(labels[j]) == _letter(labels[index])]
    if kin:
        return "vary", kin[-1]
    return "new", (index - 1 if index else None)


def choices(history: Sequence[str]) -> list[tuple[str, tuple]]:
    """Every label phrase ``len(history)`` may take after ``history``, each with its class.

    Classes are (previous phrase's kind, kind, recency of the letter, continues): kinds "new"
    (the next letter, as :func:`~tunesmith.form.labels.label_phrases` names it), "restate" (an
    earlier label), "vary" (one more prime on an earlier letter); recency 0 = the letter of the
    latest phrase that used it… up to ``RECENT``; continues: the letter followed the previous
    phrase's letter when that letter last came before (A B A → B continues a restated A B).
    """
    previous = _kind(history, len(history) - 1) if history else "start"
    letters: list[str] = []  # most recently used first
    for label in reversed(history):
        if _letter(label) not in letters:
            letters.append(_letter(label))
    follower = _follower(history)
    used = len(letters)
    options = [(chr(ord("A") + used) if used < 26 else "Z", (previous, "new", 0, False))]
    for label in dict.fromkeys(history):  # distinct labels in order of appearance
        letter = _letter(label)
        options.append((label, (previous, "restate", min(letters.index(letter), RECENT), letter == follower)))
    for rank, letter in enumerate(letters):
        primes = max(len(x) - len(letter) for x in history if _letter(x) == letter)
        options.append((letter + "'" * (primes + 1), (previous, "vary", min(rank, RECENT), letter == follower)))
    return options


def _follower(history: Sequence[str]) -> str | None:
    """The letter that followed the last phrase's letter where that letter came last before it."""
    if not history:
        return None
    letter = _letter(history[-1])
    earlier = [j for j in range(len(history) - 1) if _letter(history[j]) == letter]
    return _letter(history[earlier[-1] + 1]) if earlier else None


def _kind(labels: Sequence[str], index: int) -> str:
    label = labels[index]
    if label in labels[:index]:
        return "restate"
    return "vary" if any(_letter(x) == _letter(label) for x in labels[:index]) else "new"


def grid_points(code: FormCode) -> list[tuple[int, int]]:
    """Each phrase boundary (every phrase start, then the song's end) as (bar line, upbeat): the
    first bar line at or after it (bar line 0 is the pickup's end) and how many steps before it."""
    bounds, at = [0], 0
    for length in code.lengths:
        at += length
        bounds.append(at)
    points = []
    for bound in bounds:
        line = -((code.pickup - bound) // code.bar)  # ceil((bound - pickup) / bar)
        points.append((line, code.pickup + line * code.bar - bound))
    return points


def phrase_bars(code: FormCode) -> list[int]:
    """Each phrase's number of bars: bar lines from the one at (or after) its start to the next's."""
    points = grid_points(code)
    return [b[0] - a[0] for a, b in zip(points, points[1:])]


@dataclass
class FormPrior:
    """Counts fitted on training forms (:func:`fit_prior`); :func:`form_bits` scores a form."""

    counts: dict = field(default_factory=lambda: defaultdict(Counter))  # bar or "*" → Counter(n)
    chosen: Counter = field(default_factory=Counter)  # class → times chosen
    offered: Counter = field(default_factory=Counter)  # class → times offered
    following: dict = field(default_factory=lambda: defaultdict(Counter))  # (n, earlier labels) → Counter(label)
    upbeats: dict = field(default_factory=lambda: defaultdict(Counter))  # context → Counter(upbeat)
    bars: dict = field(default_factory=lambda: defaultdict(Counter))  # context → Counter(k)
    same: dict = field(default_factory=lambda: defaultdict(Counter))  # (relation, slot) → Counter(bool)

    def weight(self, cls: tuple) -> float:
        """How readily a class is chosen when offered (smoothed; always > 0)."""
        return (self.chosen[cls] + 0.5) / (self.offered[cls] + 1.0)


def _place(index: int, n: int) -> tuple:
    """The phrase's place, added to its choice classes: last or not, and its index up to 3."""
    return index == n - 1, min(index, 3)


def fit_prior(codes: Sequence[FormCode]) -> FormPrior:
    """Count the training forms (``codes``, one per training song)."""
    prior = FormPrior()
    for code in codes:
        n, labels = len(code.labels), code.labels
        prior.counts[code.bar][n] += 1
        prior.counts["*"][n] += 1
        points, bars = grid_points(code), phrase_bars(code)
        for i in range(n):
            options = choices(labels[:i])
            for label, cls in options:
                prior.offered[cls + _place(i, n)] += 1
            prior.chosen[_chosen_class(options, labels, i) + _place(i, n)] += 1
            prior.following[(n, labels[:i])][labels[i]] += 1
            for context in _upbeat_contexts(code, i, points):
                prior.upbeats[context][points[i + 1][1]] += 1
            relation, ref = reference(labels, i)
            if ref is not None:
                equal = bars[i] == bars[ref]
                prior.same[(relation, _slot(i, n))][equal] += 1
                if equal:
                    continue
            for context in _bar_contexts(code, i, bars):
                prior.bars[context][bars[i]] += 1
    return prior


def _chosen_class(options: list[tuple[str, tuple]], labels: Sequence[str], index: int) -> tuple:
    for label, cls in options:
        if label == labels[index]:
            return cls
    raise ValueError(f"the labels {' '.join(labels)!r} are not a form the labeller produces (phrase {index + 1})")


def _upbeat_contexts(code: FormCode, index: int, points: Sequence[tuple[int, int]]) -> list[tuple]:
    """Contexts of the upbeat of the boundary that ends phrase ``index``, the most general first."""
    upbeat = points[index][1]
    if index == len(code.labels) - 1:  # the song's end
        return [(code.bar, True), (code.bar, True, code.pickup), (code.bar, True, code.pickup, upbeat)]
    relation, ref = reference(code.labels, index + 1)
    restated = points[ref][1] if relation != "new" else -1
    return [(code.bar, False), (code.bar, False, upbeat), (code.bar, False, upbeat, relation, restated),
            (code.bar, False, upbeat, relation, restated, code.pickup)]  # fmt: skip


def _bar_contexts(code: FormCode, index: int, bars: Sequence[int]) -> list[tuple]:
    """Contexts of phrase ``index``'s number of bars, the most general first."""
    slot = _slot(index, len(code.labels))
    previous, first = (bars[index - 1], bars[0]) if index else (-1, -1)
    return [(code.bar,), (code.bar, slot), (code.bar, slot, previous), (code.bar, slot, previous, first),
            (code.bar, slot, previous, first, sum(bars[:index]) % 2)]  # fmt: skip


def count_probability(prior: FormPrior, n: int, bar: int) -> float:
    """p(n phrases | bar length)."""
    pooled = witten_bell(prior.counts.get("*"), universal(n), n)
    return witten_bell(prior.counts.get(bar), pooled, n)


def _choice_probability(prior: FormPrior, labels: Sequence[str], index: int, n: int) -> float:
    options = choices(labels[:index])
    _chosen_class(options, labels, index)  # refuses a label no form can have there
    total = sum(prior.weight(cls + _place(index, n)) for _, cls in options)
    return sum(prior.weight(cls + _place(index, n)) for name, cls in options if name == labels[index]) / total


def sequential_probability(prior: FormPrior, labels: Sequence[str]) -> float:
    """p(labels | n) under the choice model alone (sums to 1 over label strings of length n)."""
    return math.prod(_choice_probability(prior, labels, i, len(labels)) for i in range(len(labels)))


def labels_probability(prior: FormPrior, labels: Sequence[str]) -> float:
    """p(labels | n = len(labels)): each label from the choice model, interpolated with the labels
    that followed the same earlier ones in training songs of n phrases."""
    labels, n, p = tuple(labels), len(labels), 1.0
    for i in range(n):
        p *= witten_bell(prior.following.get((n, labels[:i])), _choice_probability(prior, labels, i, n), labels[i])
    return p


def length_probability(prior: FormPrior, code: FormCode, index: int) -> float:
    """p(length of phrase ``index`` | the labels, the earlier lengths, bar length, pickup): the
    upbeat after it times its number of bars, renormalised over the pairs giving a length > 0."""
    points, bars = grid_points(code), phrase_bars(code)
    before = points[index][1]

    def upbeat(value: int) -> float:
        p = 1.0 / code.bar
        for context in _upbeat_contexts(code, index, points):
            p = witten_bell(prior.upbeats.get(context), p, value)
        return p

    def chain(k: int) -> float:
        p = universal(k + 1)
        for context in _bar_contexts(code, index, bars):
            p = witten_bell(prior.bars.get(context), p, k)
        return p

    relation, ref = reference(code.labels, index)
    if ref is None:
        span = chain
    else:
        counts = prior.same.get((relation, _slot(index, len(code.labels))), Counter())
        p_same = (counts[True] + 1.0) / (counts[True] + counts[False] + 2.0)
        chain_ref = chain(bars[ref])

        def span(k: int) -> float:
            return p_same if k == bars[ref] else (1.0 - p_same) * chain(k) / (1.0 - chain_ref)

    # a length ≤ 0 would be 0 bars ending at an upbeat ≥ this phrase's own: left out
    void = span(0) * sum(upbeat(u) for u in range(before, code.bar))
    return upbeat(points[index + 1][1]) * span(bars[index]) / (1.0 - void)


def form_bits(prior: FormPrior, code: FormCode) -> dict[str, float]:
    """Code length of one form in bits: ``count``, ``labels``, ``lengths`` and their ``total``."""
    count = -math.log2(count_probability(prior, len(code.labels), code.bar))
    labels = -math.log2(labels_probability(prior, code.labels))
    lengths = -sum(math.log2(length_probability(prior, code, i)) for i in range(len(code.labels)))
    return {"count": count, "labels": labels, "lengths": lengths, "total": count + labels + lengths}


def songs_prior_bits(train_songs: Sequence[Song], songs: Sequence[Song]) -> list[float]:
    """Each of ``songs``' form code length in bits under the prior fitted on ``train_songs``."""
    prior = fit_prior([song_form_code(s) for s in train_songs])
    return [form_bits(prior, song_form_code(s))["total"] for s in songs]


def two_stage(metrics: dict, prior_bits: float) -> dict[str, float]:
    """Two-stage figures from conditional validation metrics (:func:`tunesmith.likelihood.summarize`)
    and the summed prior bits of the same songs: ``prior_bits_per_song``, ``two_stage_bits_per_step``
    (prior bits added to the total) and ``two_stage_pitch_bits_per_note`` (all prior bits charged
    to pitch: conservative)."""
    steps, notes, songs = metrics["steps"], metrics["notes"], metrics["songs"]
    return {
        "prior_bits_per_song": prior_bits / songs if songs else float("nan"),
        "two_stage_bits_per_step": (metrics["bits_per_step"] * steps + prior_bits) / steps if steps else float("nan"),
        "two_stage_pitch_bits_per_note": (metrics["pitch_bits_per_note"] * notes + prior_bits) / notes
        if notes else float("nan"),
    }  # fmt: skip
