"""The plan: a request resolved once, in the MODEL's key, into everything decoding needs per step.

The model writes in C major / A minor. The key shift happens here and only here: token primers,
``--scale``/``--range`` and user-fixed notes move into the model's key when the plan is made,
and :meth:`Plan.melody_tokens` moves the result back out. The decoding loop
(:mod:`tunesmith.generate.decode`) then just follows the plan:

- ``prefix``: tokens fed after ``<s>`` before the first free step (a primer, or the bars kept
  before a regenerated region);
- ``fixed``: later steps whose token is given (kept bars after the region, user-fixed notes);
  those from ``scored_from`` on are scored, log p(kept | everything before);
- ``positions``/``bar_of_step``: metric position and bar of every step (:mod:`tunesmith.meter`);
- ``controls``: per-step masks and biases (structure and end rules, scale, range, and later
  form or originality guards).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import torch

from tunesmith.encoding import HOLD, REST, Vocabulary, is_pitch
from tunesmith.errors import TunesmithError
from tunesmith.generate.config import DEFAULT_BARS, GenerationConfig
from tunesmith.generate.constraints import parse_range, range_mask, require_pitches, scale_mask
from tunesmith.generate.controls import MOTIF_ORDER, Control, MotifEcho, Structure, TokenMask
from tunesmith.generate.form import FormControl, final_pitch_ids
from tunesmith.generate.layout import resolve_form
from tunesmith.generate.primer import parse_primer, primer_tokens_of_song, read_primer_file, to_model_key
from tunesmith.meter import bar_of_steps, beat_steps, full_bar_starts
from tunesmith.song import bar_steps, key_name, step_positions, tonic_pitch_class, transposition_to


@dataclass
class Plan:
    """Everything one decoding run needs, in the model's key (see the module docstring)."""

    vocab: Vocabulary
    num: int  # melodies (searches, for beam search)
    mode: str
    meter: str
    tonic_pc: int  # output key's tonic pitch class
    shift: int  # semitones from the model's key to the output key
    mode_id: int
    meter_id: int
    bar_length: int
    bar_starts: list[int]  # known bar lines; regular bars follow the last one
    total_steps: int
    prefix: list[int]  # token ids fed after <s>
    fixed: dict[int, int] = field(default_factory=dict)  # step → token id given by the plan
    scored_from: int | None = None  # fixed tokens from this step on are scored
    controls: list[Control] = field(default_factory=list)
    seed: int = 0
    positions: list[int] = field(default_factory=list)  # step-within-bar of steps 0..total_steps
    bar_of_step: list[int] = field(default_factory=list)  # index of each step's bar (-1 = pickup)
    form: FormControl | None = None  # the melody's form: model inputs and restatement (also in controls)
    trunks: int = 0  # > 0: rows shared by num // trunks candidates each up to step ``branch`` (regenerate)
    branch: int | None = None  # the step where each trunk splits into its candidates

    def __post_init__(self):
        starts = full_bar_starts(self.bar_starts, self.total_steps + 1, self.bar_length)
        self.positions = step_positions(self.bar_starts, self.total_steps, self.bar_length)
        self.bar_of_step = bar_of_steps(starts, self.total_steps)

    @property
    def key(self) -> str:
        return key_name(self.tonic_pc, self.mode)

    def melody_tokens(self, ids: list[int]) -> tuple[list[str], bool]:
        """Body tokens in the OUTPUT key of a decoded row, and whether it ended with ``</s>``."""
        tokens = self.vocab.tokens_of(ids)
        ended = tokens[-1:] == [self.vocab.tokens[self.vocab.end]]
        body = tokens[:-1] if ended else tokens
        return [str(int(t) + self.shift) if is_pitch(t) else t for t in body], ended


def make_seed(seed: int | None) -> int:
    """The seed given, or a fresh one (recorded in each melody's params)."""
    return seed if seed is not None else random.SystemRandom().randrange(2**31)


def plan_generation(generator, config: GenerationConfig) -> Plan:
    """Resolve a generation request against ``generator``'s model; raises TunesmithError before
    any work is done."""
    config.validate()
    vocab = generator.vocab
    seed = make_seed(config.seed)
    primer_song = None
    if config.primer_file:
        primer_song = read_primer_file(config.primer_file, generator.steps_per_quarter)
    mode = config.mode or (primer_song.mode if primer_song else "major")
    meter = config.meter or (primer_song.meter if primer_song else "4/4")
    mode_id, meter_id, bar = resolve_kind(generator, mode, meter)
    model_tonic = 0 if mode == "major" else 9
    tonic_pc = tonic_pitch_class(config.key) if config.key else model_tonic
    shift = transposition_to(model_tonic, mode, tonic_pc)
    if primer_song is not None:  # the corpus reader already moved it to the model's key
        primer = to_model_key(primer_tokens_of_song(primer_song), 0, vocab)
        # In another meter only the first downbeat of the primer still holds.
        bar_starts = primer_song.bar_starts if primer_song.meter == meter else primer_song.bar_starts[:1]
    else:
        primer = to_model_key(parse_primer(config.primer), shift, vocab)
        bar_starts = [0]
    total = config.steps or bar_starts[0] + (config.bars or DEFAULT_BARS) * bar
    form = None
    if config.steps is None:
        forms = generator.forms if (config.form is not None or generator.form_aware) else None
        # the upbeat: the primer's, else the one asked for, else (no typed primer) drawn with the form
        pickup = bar_starts[0] if primer_song is not None else pickup_steps(config.pickup, generator.steps_per_quarter, bar)
        if pickup is None and config.primer:
            pickup = 0  # a typed primer begins on the downbeat
        form = resolve_form(config.form, config.bars, meter, mode, bar, pickup, forms, seed, generator.pickups)
        if form is not None:
            total = form.total_steps
            if primer_song is None:
                bar_starts = [form.pickup]
        elif config.pickup:
            raise TunesmithError("--pickup goes with a form: this model draws none by default, so give --form too")
    if len(primer) >= total:
        raise TunesmithError(f"the primer is {len(primer)} steps, as long as the requested {total}: ask for more")
    # with a form the melody lasts exactly the form: it ends after its last phrase, not before
    controls: list[Control] = [Structure(None if config.full_length or form is not None else 0)]
    tonic_ids = [vocab.index[str(p)] for p in vocab.pitches if p % 12 == model_tonic] if form is not None else []
    form_control = None
    if form is not None:
        form_control = FormControl(form, vocab, tonic_ids, tonic_bias=config.cadence,
                                   final_ids=final_pitch_ids(vocab, mode) if config.cadence else [],
                                   final_steps=beat_steps(meter, generator.steps_per_quarter))  # fmt: skip
    if form_control is not None:
        controls.append(form_control)
    if config.motif:
        controls.append(MotifEcho(MOTIF_ORDER, config.motif, quiet_from=total - bar))  # the last bar is the cadence's
    mask = pitch_mask(vocab, tonic_pc, mode, shift, config.scale, config.range, config.instrument or "")
    if mask is not None:
        controls.append(mask)
    originality = generator.originality(required=bool(config.max_copy))
    if originality is not None and config.max_copy != 0:
        from tunesmith.generate.copyguard import CopyGuard

        index, default = originality
        controls.append(CopyGuard(index, config.max_copy or default, vocab))
    return Plan(vocab, config.num, mode, meter, tonic_pc, shift, mode_id, meter_id, bar, list(bar_starts), total,
                vocab.ids(primer), controls=controls, seed=seed, form=form_control)  # fmt: skip


def pickup_steps(quarters: float | None, steps_per_quarter: int, bar: int) -> int | None:
    """``--pickup`` (quarter notes) in steps; None stays None (drawn with the form). Raises
    TunesmithError for an upbeat that is not a whole number of steps or fills a whole bar."""
    if quarters is None:
        return None
    steps = quarters * steps_per_quarter
    if steps != int(steps):
        raise TunesmithError(f"--pickup {quarters:g} is not a whole number of steps (1/{steps_per_quarter} of a quarter)")
    if not 0 <= steps < bar:
        raise TunesmithError(f"--pickup {quarters:g} must be shorter than a bar ({bar / steps_per_quarter:g} quarters)")
    return int(steps)


def resolve_kind(generator, mode: str, meter: str) -> tuple[int, int, int]:
    """Conditioning ids of ``mode`` and ``meter`` and the bar length; a kind the model never saw
    is a one-line error."""
    if mode not in generator.modes:
        raise TunesmithError(f"this model does not know mode {mode!r}; known: {', '.join(generator.modes[1:])}")
    if meter not in generator.meters:
        raise TunesmithError(f"this model does not know meter {meter!r}; known: {', '.join(generator.meters[1:])}")
    try:
        bar = bar_steps(meter, generator.steps_per_quarter)
    except ValueError as exc:
        raise TunesmithError(str(exc)) from None
    return generator.modes.index(mode), generator.meters.index(meter), bar


def pitch_mask(vocab: Vocabulary, tonic_pc: int, mode: str, shift: int, scale: bool, pitch_range: str,
               instrument: str = "") -> TokenMask | None:  # fmt: skip
    """The ``--scale``/``--range``/``--instrument`` control in model-key terms (None when none is
    asked for); a set that allows no pitch is an error."""
    masks, words = [], []
    if instrument:
        from tunesmith.instruments import playable_range

        masks.append(range_mask(vocab, *playable_range(instrument), shift))
        words.append(f"range of the {instrument}")
    if scale:
        masks.append(scale_mask(vocab, tonic_pc, mode, shift))
        words.append(f"scale of {key_name(tonic_pc, mode)} {mode}")
    if pitch_range:
        masks.append(range_mask(vocab, *parse_range(pitch_range), shift))
        words.append(f"range {pitch_range}")
    if not masks:
        return None
    combined = torch.stack(masks).all(dim=0)
    return TokenMask(require_pitches(combined, vocab, ", ".join(words)), ", ".join(words))


def model_key_tokens(tokens: list[str], shift: int) -> list[str]:
    """Output-key body tokens moved into the model's key (the inverse of :meth:`Plan.melody_tokens`)."""
    return [t if t in (HOLD, REST) or not is_pitch(t) else str(int(t) - shift) for t in tokens]
