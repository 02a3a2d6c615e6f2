"""Generation with form: the phrases a melody will have, the model's form inputs, restatement.

A request's form comes from ``--form`` (``AABA``, ``"A A' B A"``, ``A4 A4 B4 A4``) or, by
default with a form-aware model, is drawn from the training corpus's own forms for the meter
and mode (with their phrase lengths; the checkpoint's ``extra["forms"]``). ``--bars N`` picks a
corpus form lasting N bars (or one scaled to N), or splits N bars among a requested form's
phrases. :func:`resolve_form` turns it into a :class:`PlannedForm`: phrase starts in steps and
the per-step plan of :mod:`tunesmith.form.inputs`. The melody then lasts exactly the form.

:class:`FormControl` is the decoding side, one object for two jobs: it feeds the model the form
inputs of each step (the lookback token read from each row's own history) and, as a control,
makes a phrase that restates an earlier one follow it: a logit bias of ``body_bias`` toward the
token at the same offset in the earlier phrase in the phrase's body, and ``cadence_bias`` (in
effect forcing) up to and including its first note (phrases are compared by intervals from
their first note, so that note sets the level of all the rest) and in its cadence bar for an
exact restatement, so the letters the form asks for
are the letters the compliance check finds. A variant (A') follows the body and has a free
cadence bar. New letters are left to the model. No phrase after the first may begin with a
hold, so every phrase starts where the form says (a note held across the boundary would move it).
In the melody's closing half bar (and that of every phrase the last one restates exactly, whose
cadence it copies) the tonic gets a logit bonus of ``tonic_bias`` (and, once it sounds, holding
it gets the same), because the learned cadence alone ended 36% of default
melodies on the tonic where the corpus has 77%; 3.5 gives 76% (calibrated on 120 generated
melodies against the training corpus's rate, see benchmarks/results/form-model.md).
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

import torch

from tunesmith.encoding import HOLD, Vocabulary
from tunesmith.errors import TunesmithError
from tunesmith.form import inputs as fi
from tunesmith.form.labels import FormPhrase, form_string, parse_form

BODY_BIAS = 6.0  # logit bonus of the restated token in a restating phrase's body
CADENCE_BIAS = 30.0  # the same in an exact restatement's cadence bar (in effect forcing it)
TONIC_BIAS = 3.5  # logit bonus of the tonic in closing half bars (calibrated: 76% tonic endings; the corpus has 77%)
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
        """First step of phrase ``index``'s last bar (its cadence bar)."""
        end = self.starts[index + 1] if index + 1 < len(self.starts) else self.total_steps
        return max(self.starts[index], end - self.bar_length)


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


class FormControl:
    """Form inputs for the model and restatement and cadence for the sampler (see the module docstring)."""

    def __init__(self, form: PlannedForm, vocab: Vocabulary, tonic_ids: list[int] = (), body_bias: float = BODY_BIAS,
                 cadence_bias: float = CADENCE_BIAS, tonic_bias: float = TONIC_BIAS):  # fmt: skip
        self.form, self.vocab = form, vocab
        self.hold = vocab.ids([HOLD])[0]
        flat = [value for s in form.steps for value in (s.to_end, s.left, s.role)]
        self.static = torch.tensor(flat, dtype=torch.long).view(-1, 3)
        self._static = [(s.to_end, s.left, s.role) for s in form.steps]
        self.source = [s.source for s in form.steps]
        self.phrase_starts = set(form.starts[1:])
        self.phrase_of = [0] * len(form.steps)
        for i, start in enumerate(form.starts):
            for t in range(start, len(form.steps)):
                self.phrase_of[t] = i
        self._no_hold: torch.Tensor | None = None
        # the bias each step gives its restated token (0: the step restates nothing)
        self.strength = [0.0] * len(form.steps)
        self.cadence_bias = cadence_bias
        self.body = [False] * len(form.steps)  # a restating body step: forced until the phrase has a note
        labels = form.labels
        for i, label in enumerate(labels):
            same = label in labels[:i]
            kin = label.rstrip("'") in [x.rstrip("'") for x in labels[:i]]
            if not kin:
                continue
            end = form.starts[i + 1] if i + 1 < len(form.starts) else form.total_steps
            cadence = form.cadence_from(i)
            for t in range(form.starts[i], end):
                if self.source[t] >= 0:
                    self.strength[t] = (cadence_bias if same else 0.0) if t >= cadence else body_bias
                    self.body[t] = t < cadence
        # the closing half bar: pitch onsets lean toward the tonic
        self.tonic = torch.zeros(len(vocab))
        self.tonic[list(tonic_ids)] = tonic_bias
        self.is_tonic = self.tonic > 0
        self.hold_on_tonic = torch.zeros(len(vocab))  # a tonic already sounding is held, not restruck
        self.hold_on_tonic[self.hold] = tonic_bias
        # the closing half bar of the last phrase and of every phrase it restates exactly (its
        # cadence is copied there, so it must be a tonic cadence there too)
        self.closing = [False] * len(form.steps)
        half = (form.bar_length + 1) // 2
        for i, label in enumerate(labels):
            if label == labels[-1]:
                end = form.starts[i + 1] if i + 1 < len(form.starts) else form.total_steps
                for t in range(max(form.starts[i], end - half), end):
                    self.closing[t] = True

    def start(self, rows: int, prefix: list[int]) -> None:
        # each row's history as Python lists (a step reads a few entries: no tensor work per row)
        self.rows, self.step = rows, len(prefix)
        self.ids = [list(prefix) for _ in range(rows)]
        self.sounding = [fi.sounding_ids(prefix, self.hold) for _ in range(rows)]
        self.pitch_ids = set(self.vocab.pitch_ids)
        pitched = [t for t, token in enumerate(prefix) if token in self.pitch_ids]
        self.last_pitch = [pitched[-1] if pitched else -1] * rows  # the latest step holding a pitch onset
        self.tonic_ids = {i for i, on in enumerate(self.is_tonic.tolist()) if on}
        self._made: dict[tuple, torch.Tensor] = {}  # one row's bias tensors, made once per kind

    def prefix_inputs(self, prefix: list[int], device) -> torch.Tensor:
        """Form inputs [1, len(prefix) + 1, 5] of the steps predicted while the prefix is fed."""
        rows = fi.rows(self.form.steps[: len(prefix) + 1], prefix, self.hold, self.vocab.pad)
        return torch.tensor([rows], dtype=torch.long, device=device)

    def row_inputs(self, step: int, row: int = 0) -> list[int]:
        """Form inputs (5 ints) of one row for predicting ``step`` (zeros past the form's end)."""
        if step >= len(self.source):
            return [0] * fi.WIDTH
        to_end, left, role = self._static[step]
        source = self.source[step]
        if source < 0:
            return [to_end, left, role, self.vocab.pad, self.vocab.pad]
        return [to_end, left, role, self.ids[row][source], self.sounding[row][source]]

    def inputs(self, step: int, device) -> torch.Tensor:
        """Form inputs [rows, 5] for predicting ``step`` (zeros past the form's end)."""
        return torch.tensor([self.row_inputs(step, r) for r in range(self.rows)], dtype=torch.long, device=device)

    def allowed(self, ctx) -> torch.Tensor | None:
        """A phrase begins with a note or a rest, never a hold: the boundary stays where the form puts it."""
        if ctx.step not in self.phrase_starts:
            return None
        if self._no_hold is None or self._no_hold.device != ctx.device:
            self._no_hold = torch.ones(len(ctx.vocab), dtype=torch.bool, device=ctx.device)
            self._no_hold[self.hold] = False
        return self._no_hold

    def bias(self, ctx) -> torch.Tensor | None:
        step = ctx.step
        if step >= len(self.strength):
            return None
        strength, closing = self.strength[step], self.closing[step]
        if not strength and not closing:
            return None
        on_tonic = self._on_tonic() if closing else None
        if not strength:
            if self.rows == 1:
                return self._one(None, 0.0, on_tonic[0]).to(ctx.device)
            return self._closing(on_tonic).to(ctx.device)
        source = self.source[step]
        targets = [ids[source] for ids in self.ids]
        if self.body[step]:  # forced until this phrase has its first note
            start = self.form.starts[self.phrase_of[step]]
            values = [strength if last >= start else self.cadence_bias for last in self.last_pitch]
        else:
            values = [strength] * self.rows
        if self.rows == 1:
            return self._one(targets[0], values[0], on_tonic[0] if closing else None).to(ctx.device)
        values = torch.tensor([[float(v)] for v in values])
        bias = torch.zeros(self.rows, len(self.vocab)).scatter_(1, torch.tensor(targets)[:, None], values)
        if closing:
            bias = bias + self._closing(on_tonic)
        return bias.to(ctx.device)

    def _on_tonic(self) -> list[bool]:
        """Per row: the pitch sounding at the step before is a tonic (none at step 0)."""
        if not self.step:
            return [False] * self.rows
        return [sounding[self.step - 1] in self.tonic_ids for sounding in self.sounding]

    def _closing(self, on_tonic: list[bool]) -> torch.Tensor:
        """The closing half bar's bias [rows, V]: toward the tonic, and holding it once it sounds."""
        return self.tonic + torch.where(torch.tensor(on_tonic)[:, None], self.hold_on_tonic, 0.0)

    def _one(self, target: int | None, value: float, on_tonic: bool | None) -> torch.Tensor:
        """One row's bias [1, V]: ``value`` on ``target`` (None: none), plus the closing half bar's
        bias when ``on_tonic`` is not None; made as the batched bias is, then kept."""
        key = (target, value, on_tonic)
        made = self._made.get(key)
        if made is None:
            made = torch.zeros(1, len(self.vocab))
            if target is not None:
                made = made.scatter_(1, torch.tensor([[target]]), torch.tensor([[float(value)]]))
            if on_tonic is not None:
                made = self._closing([on_tonic]) if target is None else made + self._closing([on_tonic])
            self._made[key] = made
        return made

    def advance(self, chosen: torch.Tensor) -> None:
        step, hold = self.step, self.hold
        for token, ids, sounding in zip(chosen.tolist(), self.ids, self.sounding):
            ids.append(token)
            sounding.append(sounding[step - 1] if step and token == hold else token)
        pitch_ids = self.pitch_ids
        self.last_pitch = [step if ids[step] in pitch_ids else last for ids, last in zip(self.ids, self.last_pitch)]
        self.step = step + 1

    def reorder(self, index: torch.Tensor) -> None:
        keep = index.tolist()
        self.ids = [list(self.ids[i]) for i in keep]
        self.sounding = [list(self.sounding[i]) for i in keep]
        self.last_pitch = [self.last_pitch[i] for i in keep]
        self.rows = len(keep)


def form_description(form: PlannedForm | None) -> str:
    """The form as the CLI table and ``params["form"]`` show it ("" = none)."""
    return form.text if form is not None else ""
