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
2. **labels** given ``n``: Witten–Bell interpolation of the exact label strings of ``n``
   phrases, backed off to a sequential choice model: at each phrase the valid continuations —
   a new letter, a restatement of an earlier label, a new variant (one more prime) of an
   earlier letter — each weighted by its class (what the previous phrase did; new, restate or
   vary; how recently the letter was last used), normalised over the valid set. Only label
   strings the labeller can produce get mass, and they sum to 1 for each ``n``;
3. **lengths**, phrase by phrase given the labels: a phrase with a reference (the phrase it
   restates or varies, as in :func:`~tunesmith.form.inputs.plan_steps`, else the previous
   phrase) first codes whether it is as long as the reference (smoothed rates per relation and
   slot); otherwise (and for the first phrase) its length ``d`` comes from Witten–Bell
   interpolation over contexts (bar length, slot first/inner/last, pickup) → (bar length,
   slot) → (bar length) → ``1 / (d (d + 1))``, renormalised without the reference's length.
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


@dataclass
class FormPrior:
    """Counts fitted on training forms (:func:`fit_prior`); :func:`form_bits` scores a form."""

    counts: dict = field(default_factory=lambda: defaultdict(Counter))  # bar or "*" → Counter(n)
    strings: dict = field(default_factory=lambda: defaultdict(Counter))  # n → Counter(label tuple)
    chosen: Counter = field(default_factory=Counter)  # class → times chosen
    offered: Counter = field(default_factory=Counter)  # class → times offered
    lengths: dict = field(default_factory=lambda: defaultdict(Counter))  # context → Counter(steps)
    same: dict = field(default_factory=lambda: defaultdict(Counter))  # (relation, slot) → Counter(bool)

    def weight(self, cls: tuple) -> float:
        """How readily a class is chosen when offered (smoothed; always > 0)."""
        return (self.chosen[cls] + 0.5) / (self.offered[cls] + 1.0)


def fit_prior(codes: Sequence[FormCode]) -> FormPrior:
    """Count the training forms (``codes``, one per training song)."""
    prior = FormPrior()
    for code in codes:
        n, labels = len(code.labels), code.labels
        prior.counts[code.bar][n] += 1
        prior.counts["*"][n] += 1
        prior.strings[n][labels] += 1
        for i in range(n):
            options = choices(labels[:i])
            for label, cls in options:
                prior.offered[cls] += 1
            prior.chosen[_chosen_class(options, labels, i)] += 1
            relation, ref = reference(labels, i)
            slot = _slot(i, n)
            if ref is not None:
                equal = code.lengths[i] == code.lengths[ref]
                prior.same[(relation, slot)][equal] += 1
                if equal:
                    continue
            for context in _length_contexts(code, i):
                prior.lengths[context][code.lengths[i]] += 1
    return prior


def _chosen_class(options: list[tuple[str, tuple]], labels: Sequence[str], index: int) -> tuple:
    for label, cls in options:
        if label == labels[index]:
            return cls
    raise ValueError(f"the labels {' '.join(labels)!r} are not a form the labeller produces (phrase {index + 1})")


def _length_contexts(code: FormCode, index: int) -> list[tuple]:
    """Length contexts of phrase ``index``, the most general first."""
    slot = _slot(index, len(code.labels))
    previous = code.lengths[index - 1] if index else 0
    return [(code.bar,), (code.bar, slot), (code.bar, slot, code.pickup), (code.bar, slot, code.pickup, previous)]


def count_probability(prior: FormPrior, n: int, bar: int) -> float:
    """p(n phrases | bar length)."""
    pooled = witten_bell(prior.counts.get("*"), universal(n), n)
    return witten_bell(prior.counts.get(bar), pooled, n)


def sequential_probability(prior: FormPrior, labels: Sequence[str]) -> float:
    """p(labels | n) under the choice model alone (sums to 1 over label strings of length n)."""
    p = 1.0
    for i, label in enumerate(labels):
        options = choices(labels[:i])
        _chosen_class(options, labels, i)  # refuses a label no form can have there
        total = sum(prior.weight(cls) for _, cls in options)
        p *= sum(prior.weight(cls) for name, cls in options if name == label) / total
    return p


def labels_probability(prior: FormPrior, labels: Sequence[str]) -> float:
    """p(labels | n = len(labels)): exact strings seen in training, backed off to the choice model."""
    labels = tuple(labels)
    return witten_bell(prior.strings.get(len(labels)), sequential_probability(prior, labels), labels)


def length_probability(prior: FormPrior, code: FormCode, index: int) -> float:
    """p(length of phrase ``index`` | the labels, the earlier lengths, bar length, pickup)."""
    n, d = len(code.labels), code.lengths[index]
    slot = _slot(index, n)
    relation, ref = reference(code.labels, index)

    def chain(steps: int) -> float:
        p = universal(steps)
        for context in _length_contexts(code, index):
            p = witten_bell(prior.lengths.get(context), p, steps)
        return p

    if ref is None:
        return chain(d)
    counts = prior.same.get((relation, slot), Counter())
    p_same = (counts[True] + 1.0) / (counts[True] + counts[False] + 2.0)
    if d == code.lengths[ref]:
        return p_same
    return (1.0 - p_same) * chain(d) / (1.0 - chain(code.lengths[ref]))


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
