"""Where a melody's phrases go: a form (requested or drawn from the corpus) laid out in steps.

A request's form comes from ``--form`` (``AABA``, ``"A A' B A"``, ``A4 A4 B4 A4``) or, by
default with a form-aware model, is drawn from the training corpus's own forms for the meter
and mode (with their phrase lengths; the checkpoint's ``extra["forms"]``). ``--bars N`` picks a
corpus form lasting N bars (or one scaled to N), or splits N bars among a requested form's
phrases. The pickup and the last bar are drawn with it from how the corpus's songs begin and
end (``extra["pickups"]``), or set by ``--pickup``. :func:`resolve_form` turns it into a
:class:`PlannedForm`: phrase starts in steps (every phrase begins with the pickup's upbeat, as
the corpus's phrases do) and the per-step plan of :mod:`tunesmith.form.inputs`. The melody then
lasts exactly the form; :class:`tunesmith.generate.form.FormControl` decodes it.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

from tunesmith.errors import TunesmithError
from tunesmith.form import inputs as fi
from tunesmith.form.labels import FormPhrase, form_string, parse_form

DEFAULT_PHRASE_BARS = 2  # phrase length when neither the form nor the corpus says (erk: 85% are 2 bars)


@dataclass
class PlannedForm:
    """A form laid out in steps: ``phrases`` (with bars), their ``starts``, the per-step ``steps``."""

    phrases: list[FormPhrase]
    starts: list[int]
    total_steps: int
    bar_length: int
    source: str  # "requested" | "corpus"
    pickup: int = 0  # steps before the first bar line

    def __post_init__(self):
        self.steps = fi.plan_steps(self.total_steps, self.starts, self.labels)

    @property
    def labels(self) -> list[str]:
        return [p.label for p in self.phrases]

    @property
    def text(self) -> str:
        """The form with phrase lengths, e.g. ``A2 A2 B2 A2``."""
        return " ".join(f"{p.label}{p.bars}" for p in self.phrases)

    def cadence_from(self, index: int) -> int:
        """First step of phrase ``index``'s cadence: its last bar line inside the phrase (its start
        when it has none), where the compliance check (``form.labels``) divides body and cadence;
        with an upbeat that is the upbeat's length after the phrase's last bar-length step."""
        start = self.starts[index]
        end = self.starts[index + 1] if index + 1 < len(self.starts) else self.total_steps
        last = self.pickup + (end - 1 - self.pickup) // self.bar_length * self.bar_length
        return last if start < last < end else start


def is_free(form: str | None) -> bool:
    """``--form none``: no form at all (the model alone decides phrases and the end)."""
    return form is not None and form.strip().lower() in ("none", "free")


def resolve_form(text: str | None, bars: int | None, meter: str, mode: str, bar_length: int, pickup: int | None,
                 forms: dict | None, seed: int, pickups: dict | None = None) -> PlannedForm | None:  # fmt: skip
    """The planned form of a request (None = no form): ``text`` is ``--form`` (None = draw from
    ``forms``, the corpus distribution, when there is one), ``bars`` is ``--bars``, ``pickup`` the
    steps before the first bar line (None = drawn with its last bar from ``pickups``, the corpus's
    :func:`~tunesmith.form.inputs.corpus_pickups`, else none). Raises TunesmithError (one line)
    for a form that cannot fit."""
    if is_free(text):
        return None
    if text is not None:
        phrases, source = fit_bars(parse_form(text), bars, forms, meter, mode), "requested"
    elif forms:
        phrases, source = draw_fitting(forms, meter, mode, bars, random.Random(seed)), "corpus"
    else:
        return None
    last = None
    if pickup is None:
        pickup, last = draw_ends(pickups, meter, mode, bar_length, random.Random(f"{seed} pickup"))
    return lay_out(phrases, bar_length, pickup, source, last)


def draw_ends(pickups: dict | None, meter: str, mode: str, bar_length: int, rng: random.Random) -> tuple[int, int | None]:
    """A ``(pickup, last bar)`` in steps drawn from the corpus's songs in ``meter`` and ``mode``
    (any mode when that one has none; ``(0, None)``, no pickup and a full last bar, without them)."""
    counter = (pickups or {}).get((meter, mode)) or sum(
        (c for (m, _), c in (pickups or {}).items() if m == meter), Counter())  # fmt: skip
    valid = sorted(k for k in counter if 0 <= k[0] < bar_length and 0 < k[1] <= bar_length)
    if not valid:
        return 0, None
    return rng.choices(valid, weights=[counter[k] for k in valid])[0]


def lay_out(phrases: list[FormPhrase], bar_length: int, pickup: int, source: str, last: int | None = None) -> PlannedForm:
    """Phrases with lengths in bars laid out in steps, as the corpus's songs phrase: after a
    pickup of ``pickup`` steps every phrase begins with the same upbeat (``pickup`` steps before
    its bar line; 79% of the inner phrases of erk songs with a pickup do) and lasts its bars
    from upbeat to upbeat; the last bar has ``last`` steps (default: what the pickup leaves of
    it, a full bar without one; always that when the last phrase restates an earlier one exactly,
    which it can only do at the same length)."""
    if not 0 <= pickup < bar_length:
        raise TunesmithError(f"a pickup of {pickup} steps does not fit a bar of {bar_length}")
    if last is None or phrases[-1].label in [p.label for p in phrases[:-1]]:
        last = bar_length - pickup if pickup else bar_length
    starts, bars = [], 0
    for phrase in phrases:
        starts.append(bars * bar_length)
        bars += phrase.bars
    total = pickup + (bars - 1) * bar_length + last
    return PlannedForm(list(phrases), starts, total, bar_length, source, pickup)


def legacy_lay_out(phrases: list[FormPhrase], bar_length: int, pickup: int, source: str) -> PlannedForm:
    """The layout melodies were composed with before phrases began with the pickup's upbeat: the
    first phrase held the pickup, the others began on bar lines (their JSON still regenerates)."""
    starts, step = [], 0
    for phrase in phrases:
        starts.append(step)
        step += phrase.bars * bar_length + (pickup if not starts[1:] else 0)
    return PlannedForm(list(phrases), starts, step, bar_length, source, pickup)


def melody_form(text: str, source: str, phrase_starts: list[int], total_steps: int, bar_length: int,
                pickup: int) -> PlannedForm:  # fmt: skip
    """The planned form a melody records (``params["form"]`` such as ``A2 A2 B2 A2``, its
    ``phrase_starts``), checked against the melody: regenerating bars of it follows the same form.
    A form that does not fit the melody is a one-line error."""
    phrases = parse_form(text)
    if phrases[0].bars is None:
        raise TunesmithError(f"the melody's form {text!r} gives no phrase lengths (write it like A2 A2 B2 A2)")
    source = source if source in ("requested", "corpus") else "requested"
    bars = sum(p.bars for p in phrases)
    last = total_steps - pickup - (bars - 1) * bar_length  # the melody's last bar, as it was drawn
    candidates = [legacy_lay_out(phrases, bar_length, pickup, source)]
    if 0 < last <= bar_length and 0 <= pickup < bar_length:
        candidates.insert(0, lay_out(phrases, bar_length, pickup, source, last))
    fitting = [f for f in candidates if f.total_steps == total_steps]
    if not fitting:
        raise TunesmithError(f"the melody's form {text!r} lasts {candidates[0].total_steps} steps but the melody has "
                             f"{total_steps}: its JSON was changed")  # fmt: skip
    matching = [f for f in fitting if not phrase_starts or list(phrase_starts) == f.starts]
    if not matching:
        raise TunesmithError(f"the melody's phrase starts {list(phrase_starts)} do not match its form {text!r}")
    return matching[0]


@lru_cache(maxsize=4096)
def _parsed(form: str) -> tuple[FormPhrase, ...]:
    """A corpus form string parsed once (forms are drawn on every request)."""
    return tuple(parse_form(form))


def typical_bars(forms: dict | None, meter: str, mode: str) -> int:
    """The corpus's most common phrase length in bars for ``meter`` and ``mode``."""
    counts: Counter = Counter()
    for (m, md), counter in (forms or {}).items():
        if m == meter:
            for form, n in counter.items():
                for phrase in _parsed(form):
                    counts[phrase.bars] += n * (2 if md == mode else 1)
    return counts.most_common(1)[0][0] if counts else DEFAULT_PHRASE_BARS


def fit_bars(phrases: list[FormPhrase], bars: int | None, forms: dict | None, meter: str,
             mode: str) -> list[FormPhrase]:  # fmt: skip
    """A requested form with a length for every phrase: the form's own, ``bars`` split among the
    phrases (equal lengths for phrases of one letter), or the corpus's typical phrase length."""
    n = len(phrases)
    if phrases[0].bars is not None:
        total = sum(p.bars for p in phrases)
        if bars is not None and total != bars:
            raise TunesmithError(f"the form lasts {total} bars but --bars is {bars}: make them agree or leave one out")
        return phrases
    if bars is None:
        length = typical_bars(forms, meter, mode)
        return [FormPhrase(p.letter, p.primes, length) for p in phrases]
    if bars < n:
        raise TunesmithError(f"the form has {n} phrases, more than --bars {bars}: give at least one bar per phrase")
    base, spare = divmod(bars, n)
    lengths = [base] * n
    groups: dict[str, list[int]] = {}
    for i, phrase in enumerate(phrases):  # phrases of one letter (A, A') last equally
        groups.setdefault(phrase.letter, []).append(i)
    order = sorted(groups.values(), key=lambda g: (len(g), -g[-1]))  # small groups first, later ones first
    while spare and any(len(g) <= spare for g in order):  # spare bars go round the letters
        for group in order:
            if len(group) <= spare:
                for i in group:
                    lengths[i] += 1
                spare -= len(group)
    if spare:
        raise TunesmithError(f"cannot split {bars} bars among the phrases of {form_string([p.label for p in phrases])}"
                             f" so that equal letters last equally: give lengths, e.g. A4 A4 B4 A4")  # fmt: skip
    return [FormPhrase(p.letter, p.primes, length) for p, length in zip(phrases, lengths)]


def draw_fitting(forms: dict, meter: str, mode: str, bars: int | None, rng: random.Random) -> list[FormPhrase]:
    """A corpus form for ``meter``/``mode`` (any mode when that one has none) lasting ``bars``:
    one of exactly that length, else one whose lengths scale to it, else the most common
    lettering split over ``bars`` (see :func:`fit_bars`)."""
    counter = forms.get((meter, mode)) or sum((c for (m, _), c in forms.items() if m == meter), Counter())
    if not counter:
        counter = sum(forms.values(), Counter())  # a meter the corpus has no form for
    parsed = {form: list(_parsed(form)) for form in counter}
    total = {form: sum(p.bars for p in phrases) for form, phrases in parsed.items()}

    def pick(candidates: list[str]) -> str:
        candidates = sorted(candidates)
        return rng.choices(candidates, weights=[counter[c] for c in candidates])[0]

    if bars is None:
        return parsed[pick(list(counter))]
    exact = [f for f in counter if total[f] == bars]
    if exact:
        return parsed[pick(exact)]
    scaled = [f for f in counter if bars % total[f] == 0]
    if scaled:
        form = pick(scaled)
        k = bars // total[form]
        return [FormPhrase(p.letter, p.primes, p.bars * k) for p in parsed[form]]
    length = typical_bars(forms, meter, mode)
    n = max(1, min(bars, round(bars / length)))
    letterings = Counter()
    for form, phrases in parsed.items():
        if len(phrases) == n:
            letterings[" ".join(p.label for p in phrases)] += counter[form]
    letters = letterings.most_common(1)[0][0] if letterings else " ".join(chr(ord("A") + i) for i in range(n))
    try:
        return fit_bars(parse_form(letters), bars, forms, meter, mode)
    except TunesmithError:
        return fit_bars(parse_form(" ".join(chr(ord("A") + i) for i in range(n))), bars, forms, meter, mode)
