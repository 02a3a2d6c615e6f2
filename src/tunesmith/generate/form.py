"""Generation with form: the model's form inputs and restatement, step by step.

Where the phrases go is :mod:`tunesmith.generate.layout` (:func:`resolve_form` gives a
:class:`PlannedForm`). :class:`FormControl` is the decoding side, one object
for two jobs: it feeds the model the form
inputs of each step (the lookback token read from each row's own history) and, as a control,
makes a phrase that restates an earlier one follow it: a logit bias of ``body_bias`` toward the
token at the same offset in the earlier phrase in the phrase's body, and ``cadence_bias`` (in
effect forcing) up to and including its first note (phrases are compared by intervals from
their first note, so that note sets the level of all the rest) and in its cadence bar for an
exact restatement, so the letters the form asks for
are the letters the compliance check finds. A variant (A') follows the body and has a free
cadence bar. A phrase of a new letter is left to the model, except that it may not copy an
earlier phrase: once it has struck the same note as one at ``CONTRAST_SHARE`` of that phrase's
onsets so far (from its ``CONTRAST_FROM``-th), that phrase's next onset at the same offset (a note
or rest, never a hold: the rhythm may agree) gets a penalty of ``CONTRAST_BIAS``. Without it 2–16% of default melodies (by meter and length) had a new letter
that came out as a restatement or variant of an earlier phrase, most of their form misses (see
``benchmarks/bench_form_misses.py``). No phrase after the first may begin with a hold, so every phrase starts where the form says (a note held across the boundary would move it).
In the melody's closing half bar (and that of every phrase the last one restates exactly, whose
cadence it copies) the tonic gets a logit bonus of ``tonic_bias`` (and, once it sounds, holding
it gets ``hold_bias``), because the learned cadence alone ended 36% of default
melodies on the tonic where the corpus has 77%.
With ``final_ids`` (the pitches of the mode's :data:`~tunesmith.song.FINAL_DEGREES`) those
closing phrases also *end* on a degree folk songs end on: in their last ``final_steps`` (a beat)
a rest or another pitch gets a logit penalty of ``ENDING_BIAS`` (in effect forbidding it), and
so does holding a note of another degree (or a rest) into that beat. Without it one default
melody in six ended on the 5th, 2nd or 4th (real songs: 3%), which sounds unfinished. With it,
``tonic_bias`` 1.5 and ``hold_bias`` 3.5 ended 83% of the previous model's melodies shaped like
the calibration songs (``evaluate --half calib``) on the tonic and the rest on the third (the
songs: 82% and 15%), with last notes of 1.39 quarters (1.55); see
benchmarks/results/structure-giveaways.md. The model with copy scores (2026-11-26) closes on the
tonic more readily by itself: ``tonic_bias`` 1.25 ends 82.7% of its melodies there (1.5: 84.5%).
"""

from __future__ import annotations

from itertools import chain

import numpy as np
import torch

from tunesmith.encoding import HOLD, Vocabulary
from tunesmith.form import inputs as fi
from tunesmith.generate.layout import PlannedForm
from tunesmith.song import FINAL_DEGREES

BODY_BIAS = 6.0  # logit bonus of the restated token in a restating phrase's body
CADENCE_BIAS = 30.0  # the same in an exact restatement's cadence bar (in effect forcing it)
TONIC_BIAS = 1.25  # logit bonus of the tonic in closing half bars (calibrated for models/erk.pt on the calibration songs: 82.7% tonic endings, the songs 82.0%)
HOLD_BIAS = 3.5  # logit bonus of holding a tonic that sounds in a closing half bar (a long last note)
CONTRAST_BIAS = 3.0  # logit penalty of the earlier phrase's token in a new letter that is copying that phrase
CONTRAST_SHARE, CONTRAST_FROM = 0.7, 2  # "copying": the same note at >= 70% of its onsets so far, from its 2nd onset
ENDING_BIAS = 30.0  # logit penalty of ending a closing phrase on a degree songs do not end on (in effect forbidding it)


class FormControl:
    """Form inputs for the model and restatement and cadence for the sampler (see the module docstring)."""

    def __init__(self, form: PlannedForm, vocab: Vocabulary, tonic_ids: list[int] = (), body_bias: float = BODY_BIAS,
                 cadence_bias: float = CADENCE_BIAS, tonic_bias: float = TONIC_BIAS, final_ids: list[int] = (),
                 final_steps: int = 0, hold_bias: float = HOLD_BIAS):  # fmt: skip
        self.form, self.vocab = form, vocab
        self.hold = vocab.ids([HOLD])[0]
        self._static = [step[:3] for step in form.steps]  # to_end, left, role
        flat = np.fromiter(chain.from_iterable(self._static), np.int64, 3 * len(self._static))
        self.static = torch.from_numpy(flat.reshape(-1, 3))
        self.source = [step.source for step in form.steps]
        self.phrase_starts = set(form.starts[1:])
        # each step's phrase: the last whose start is at or before it (0 before the first)
        ends = list(form.starts[1:]) + [len(form.steps)]
        self.phrase_of = [0] * min(form.starts[0], len(form.steps)) + [
            i for i, (start, end) in enumerate(zip(form.starts, ends)) for _ in range(start, min(end, len(form.steps)))]
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
        self.hold_on_tonic[self.hold] = hold_bias if tonic_bias else 0.0
        # the closing half bar of the last phrase and of every phrase it restates exactly (its
        # cadence is copied there, so it must be a tonic cadence there too)
        self.closing = [False] * len(form.steps)
        # the ending: the last beat of those phrases (1 = inside it, 2 = its first step)
        self.final = [0] * len(form.steps)
        half = (form.bar_length + 1) // 2
        beat = min(final_steps, half) if final_ids else 0
        for i, label in enumerate(labels):
            if label == labels[-1]:
                end = form.starts[i + 1] if i + 1 < len(form.starts) else form.total_steps
                for t in range(max(form.starts[i], end - half), end):
                    self.closing[t] = True
                for t in range(max(form.starts[i], end - beat), end):
                    self.final[t] = 2 if t == max(form.starts[i], end - beat) else 1
        self.is_final = torch.zeros(len(vocab), dtype=torch.bool)  # pitches a closing phrase may end on
        self.is_final[list(final_ids)] = True
        self.ending = torch.zeros(len(vocab))  # in the last beat: any other pitch, or a rest, is penalised
        final = set(final_ids)  # (the list, not the tensor: one look-up per pitch costs a tensor index each)
        self.ending[[i for i in vocab.pitch_ids if i not in final] + [vocab.rest]] = -ENDING_BIAS
        self.hold_off_final = torch.zeros(len(vocab))  # at its first step: so is holding another degree
        self.hold_off_final[self.hold] = -ENDING_BIAS
        # contrast: in a phrase of a new letter, the step at the same offset in each earlier phrase (-1 past its end)
        self.rivals: list[list[int]] = [[] for _ in form.steps]
        self.rival_table = np.full((len(form.steps), len(form.starts)), -1, np.int64)  # the same, -1 padded
        ends = form.starts[1:] + [form.total_steps]
        first, last = np.array(form.starts, np.int64), np.array(ends, np.int64)
        for i, label in enumerate(labels):
            if i == 0 or label.rstrip("'") in [x.rstrip("'") for x in labels[:i]]:
                continue
            there = first[:i] + np.arange(ends[i] - form.starts[i])[:, None]  # [offset, earlier phrase]
            block = self.rival_table[form.starts[i] : ends[i], :i] = np.where(there < last[:i], there, -1)
            self.rivals[form.starts[i] : ends[i]] = block.tolist()

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
        # per row, per earlier phrase: the steps so far of the current phrase equal to it there
        self.seen, self.agree = [], []
        for _ in range(rows):
            seen, agree = self.prefix_agree(prefix)
            self.seen.append(seen)
            self.agree.append(agree)

    def prefix_agree(self, prefix: list[int]) -> tuple[list[int], list[int]]:
        """Per earlier phrase, its onsets at the offsets ``prefix``'s last (unfinished) phrase has
        reached, and how many of them that phrase struck too (the same note at the same offset)."""
        begun = max(s for s in [0, *self.phrase_starts] if s <= len(prefix))
        seen, agree = [0] * len(self.form.starts), [0] * len(self.form.starts)
        for t in range(begun, min(len(prefix), len(self.rivals))):
            for j, source in enumerate(self.rivals[t]):
                if source >= 0 and prefix[source] != self.hold:
                    seen[j] += 1
                    agree[j] += prefix[source] == prefix[t]
        return seen, agree

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
        contrast = self._contrast(step) if self.rivals[step] else None
        if not strength and not closing and contrast is None:
            return None
        bias = self._restating(step, strength, closing) if strength or closing else torch.zeros(1, len(self.vocab))
        if self.final[step]:
            bias = bias + self._ending(step)
        if contrast is not None:
            bias = bias + contrast
        return bias.to(ctx.device)

    def _contrast(self, step: int) -> torch.Tensor | None:
        """A new letter's penalty [rows, V] (None: none): each earlier phrase the current phrase has
        copied so far (the same notes at ``CONTRAST_SHARE`` of its onsets) has its onset here
        penalised, so a new letter does not come out as a restatement or variant of it."""
        hold = self.hold
        copied = [{ids[source] for source, n, a in zip(self.rivals[step], seen, agree)
                   if source >= 0 and ids[source] != hold and n >= CONTRAST_FROM and a >= CONTRAST_SHARE * n}
                  for ids, seen, agree in zip(self.ids, self.seen, self.agree)]  # fmt: skip
        if not any(copied):
            return None
        penalty = torch.zeros(self.rows, len(self.vocab))
        for row, tokens in enumerate(copied):
            penalty[row, sorted(tokens)] = -CONTRAST_BIAS
        return penalty

    def _ending(self, step: int) -> torch.Tensor:
        """The last beat's penalty [rows, V]: other degrees and rests, and at its first step
        holding a note of another degree (or a rest) into it."""
        if self.final[step] == 1:
            return self.ending[None]
        off = [not (step and bool(self.is_final[s[step - 1]])) for s in self.sounding]
        return self.ending + torch.where(torch.tensor(off)[:, None], self.hold_off_final, 0.0)

    def _restating(self, step: int, strength: float, closing: bool) -> torch.Tensor:
        """Restatement and the closing half bar's bias [rows, V] at a step that has one of them."""
        on_tonic = self._on_tonic() if closing else None
        if not strength:
            if self.rows == 1:
                return self._one(None, 0.0, on_tonic[0])
            return self._closing(on_tonic)
        source = self.source[step]
        targets = [ids[source] for ids in self.ids]
        if self.body[step]:  # forced until this phrase has its first note
            start = self.form.starts[self.phrase_of[step]]
            values = [strength if last >= start else self.cadence_bias for last in self.last_pitch]
        else:
            values = [strength] * self.rows
        if self.rows == 1:
            return self._one(targets[0], values[0], on_tonic[0] if closing else None)
        values = torch.tensor([[float(v)] for v in values])
        bias = torch.zeros(self.rows, len(self.vocab)).scatter_(1, torch.tensor(targets)[:, None], values)
        if closing:
            bias = bias + self._closing(on_tonic)
        return bias

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
        rivals = self.rivals[step] if step < len(self.rivals) else []
        if step in self.phrase_starts:
            self.seen = [[0] * len(self.form.starts) for _ in range(self.rows)]
            self.agree = [[0] * len(self.form.starts) for _ in range(self.rows)]
        for token, ids, sounding, seen, agree in zip(chosen.tolist(), self.ids, self.sounding, self.seen, self.agree):
            for j, source in enumerate(rivals):
                if source >= 0 and ids[source] != hold:
                    seen[j] += 1
                    agree[j] += ids[source] == token
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
        self.seen = [list(self.seen[i]) for i in keep]
        self.agree = [list(self.agree[i]) for i in keep]
        self.rows = len(keep)


def final_pitch_ids(vocab: Vocabulary, mode: str) -> list[int]:
    """Ids of the model-key pitches (tonic C in major, A in minor) on the degrees a melody in
    ``mode`` may end on (:data:`~tunesmith.song.FINAL_DEGREES`)."""
    tonic = 0 if mode == "major" else 9
    degrees = FINAL_DEGREES.get(mode, (0,))
    return [vocab.index[str(p)] for p in vocab.pitches if (p - tonic) % 12 in degrees]


def form_description(form: PlannedForm | None) -> str:
    """The form as the CLI table and ``params["form"]`` show it ("" = none)."""
    return form.text if form is not None else ""
