"""Regenerate a region: new bars in the middle of a melody, every other note kept exactly.

The model reads left to right, so it cannot see what follows the region while writing it. The
engine therefore samples ``candidates`` versions of the region (the bars before it fed as the
prefix), then continues each candidate through the kept bars after it with those tokens fixed,
scoring log p(kept suffix | prefix + candidate) in the same pass, and keeps the ``num``
candidates under which the kept music is most likely. Only the first ``horizon`` kept bars are
scored (default 4, the model's longest look back): the region's influence fades after them, and
scoring fewer steps keeps 32 candidates fast. This is best-of-K rescoring of the same
model (no second model to train, no bidirectional sampler): with K candidates it approximates
choosing the region the model finds most compatible with what comes after, and it can only join
as well as the model predicts — a seam the model finds unlikely is what it scores down.
(DeepBach-style Gibbs sampling needs a model that sees both sides; this one does not.)

Notes the user fixes inside the region (``bar 6 beat 1 = D5``) are fixed tokens of the plan,
so every candidate holds them. A note or rest the melody held across the region's end is struck
again at that bar line (:func:`restrike`), so the kept bar after the region sounds as it did
instead of holding the region's new last note.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from tunesmith.encoding import HOLD, REST, decode_tokens, is_pitch
from tunesmith.errors import TunesmithError
from tunesmith.generate.config import GenerationConfig
from tunesmith.generate.melody import Melody
from tunesmith.meter import bar_spans
from tunesmith.settings import bounds, check_fields
from tunesmith.song import Song, note_number, pitch_name, tonic_pitch_class

if TYPE_CHECKING:  # torch-free at import: the CLI builds every command's flags from RegenerateConfig
    from tunesmith.generate.plan import Plan

STEP_SCHEMES = ("sample", "greedy", "mixed", "top-k", "top-p")
_FIX = re.compile(r"^\s*bar\s+(\d+)\s+beat\s+(\d+(?:\.\d+)?)\s*=\s*(\S+)\s*$", re.IGNORECASE)


@dataclass
class RegenerateConfig:
    """One regeneration request: which bars, how many versions, how they are sampled."""

    bars: str = field(default="", metadata={"metavar": "FIRST-LAST"})  # bars to write anew, as numbered in the score (a pickup is bar 0), e.g. 5-8
    num: int = field(default=1, metadata=bounds(1, 64))  # versions of the region to return, best first
    candidates: int = field(default=32, metadata=bounds(1, 1024))  # versions sampled; those that make the kept bars after the region most likely are returned
    horizon: int = field(default=4, metadata=bounds(0, 1024))  # bars after the region whose likelihood ranks the candidates; 0 = all kept bars
    join_bars: int = field(default=0, metadata=bounds(0, 1024))  # > 0: each version is written once up to its last N bars, which its candidates/num candidates write anew; the one the kept bars fit best is kept (0 = every candidate writes the whole region)
    fix: str = ""  # notes to keep inside the region, "bar 6 beat 1 = D5; bar 7 beat 3 = rest" (beats of the meter's note value)
    scheme: str = field(default="sample", metadata={"choices": STEP_SCHEMES})  # how each step of a candidate is chosen
    temperature: float = field(default=1.0, metadata=bounds(0.0, 100.0))  # > 0 (greedy ignores it); lower is safer, higher wilder
    top_k: int = field(default=8, metadata=bounds(1, 10_000))  # tokens kept by --scheme top-k
    top_p: float = field(default=0.9, metadata=bounds(0.0, 1.0, low_open=True))  # probability mass kept by --scheme top-p
    mixed_p: float = field(default=0.5, metadata=bounds(0.0, 1.0))  # chance of argmax per step with --scheme mixed
    scale: bool = False  # only pitches of the melody's key scale in the region
    range: str = field(default="", metadata={"metavar": "LOW-HIGH"})  # pitch range for the region, e.g. C4-G5
    seed: int | None = field(default=None, metadata=bounds(0, 2**63 - 1))  # makes the run reproducible (default: a fresh one, recorded)

    def validate(self) -> RegenerateConfig:
        check_fields(self)
        parse_bars(self.bars)
        if self.candidates < self.num:
            raise TunesmithError(f"--candidates ({self.candidates}) must be at least --num ({self.num})")
        if self.join_bars and self.candidates % self.num:
            raise TunesmithError(f"--candidates ({self.candidates}) must be a multiple of --num ({self.num}) "
                                 "with --join-bars: each version has the same number of candidates")  # fmt: skip
        if self.scheme != "greedy" and self.temperature <= 0:
            raise TunesmithError(f"--temperature must be > 0 with --scheme {self.scheme}, got {self.temperature!r}")
        parse_fixes(self.fix)
        if self.range:
            from tunesmith.generate.constraints import parse_range

            parse_range(self.range)
        return self

    def generation(self) -> GenerationConfig:
        """The sampling settings as a GenerationConfig (what the decoding loop reads)."""
        return GenerationConfig(num=self.candidates, scheme=self.scheme, temperature=self.temperature,
                                top_k=self.top_k, top_p=self.top_p, mixed_p=self.mixed_p, seed=self.seed)  # fmt: skip


def parse_bars(text: str | tuple[int, int]) -> tuple[int, int]:
    """``"5-8"`` (or ``"6"``, or a pair) → ``(5, 8)``; a backwards or unreadable range is an error."""
    if isinstance(text, tuple | list):
        first, last = text
    else:
        match = re.match(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$", str(text))
        if not match:
            raise TunesmithError(f"--bars {text!r}: write the bars to regenerate like 5-8 (or 6 for one bar)")
        first, last = int(match.group(1)), int(match.group(2) or match.group(1))
    if isinstance(first, bool) or isinstance(last, bool) or not isinstance(first, int) or not isinstance(last, int):
        raise TunesmithError(f"--bars must be two whole bar numbers, got {text!r}")
    if first > last:
        raise TunesmithError(f"--bars {first}-{last} goes backwards: write the first bar first")
    return first, last


def parse_fixes(text: str) -> list[tuple[int, float, int | None]]:
    """``"bar 6 beat 1 = D5; bar 7 beat 2.5 = 67; bar 8 beat 1 = rest"`` →
    ``[(6, 1.0, 74), (7, 2.5, 67), (8, 1.0, None)]`` (output-key MIDI; None = a rest)."""
    fixes = []
    for item in [part for part in re.split(r"[;,]", text) if part.strip()]:
        match = _FIX.match(item)
        if not match:
            raise TunesmithError(f"--fix {item.strip()!r}: write a fixed note like 'bar 6 beat 1 = D5'")
        try:
            pitch = None if match.group(3).lower() in ("rest", "r") else note_number(match.group(3))
        except ValueError as exc:
            raise TunesmithError(f"--fix {item.strip()!r}: {exc}") from None
        fix = (int(match.group(1)), float(match.group(2)), pitch)
        if any(f[:2] == fix[:2] and f[2] != pitch for f in fixes):
            raise TunesmithError(f"--fix bar {fix[0]} beat {fix[1]:g} is fixed to two different notes")
        fixes.append(fix)
    return fixes


def regenerate(generator, melody: Melody, bars: tuple[int, int] | str, **options: Any) -> list[Melody]:
    """``options.num`` new versions of ``bars`` of ``melody`` (see the module docstring); the
    fields of :class:`RegenerateConfig` are the options. Raises TunesmithError on bad input."""
    return regenerate_many(generator, [(melody, bars, options)])[0]


def regenerate_many(generator, requests: list[tuple[Melody, tuple[int, int] | str, dict[str, Any]]],
                    return_errors: bool = False, max_rows: int = 256, decode=None) -> list[Any]:  # fmt: skip
    """:func:`regenerate` of each ``(melody, bars, options)``, in order; requests that share their
    sampling settings (scheme, temperature, top-k, top-p, mixed-p) are decoded as one pass of
    passes of at most ``max_rows`` rows, whatever their melodies, regions, forms and fixed notes:
    each request draws from its own seed and gets exactly what it gets alone. A bad request raises
    its TunesmithError, or with ``return_errors`` takes that error's place. ``decode(plans, config)``
    replaces ``generator.decode_plans`` (the studio's shared loop); after a failure each request
    is decoded again alone by ``generator.decode_plans``."""
    results: list[Any] = [None] * len(requests)
    groups: dict[tuple, list[tuple[int, Melody, RegenerateConfig, Plan, tuple[int, int]]]] = {}
    for index, (melody, bars, options) in enumerate(requests):
        try:
            text = bars if isinstance(bars, str) else f"{bars[0]}-{bars[1]}"
            unknown = sorted(set(options) - set(RegenerateConfig.__dataclass_fields__) - {"bars"})
            if unknown:
                raise TunesmithError(f"unknown regeneration option {unknown[0]!r}")
            config = RegenerateConfig(bars=text, **options).validate()
            plan, region = plan_region(generator, melody, config)
        except TunesmithError as exc:
            if not return_errors:
                raise
            results[index] = exc
            continue
        key = (config.scheme, config.temperature, config.top_k, config.top_p, config.mixed_p)
        groups.setdefault(key, []).append((index, melody, config, plan, region))
    for members in groups.values():
        try:
            if decode is None:
                decoded = generator.decode_plans([m[3] for m in members], members[0][2].generation(), max_rows=max_rows)
            else:
                decoded = decode([m[3] for m in members], members[0][2].generation())
        except TunesmithError as exc:
            if not return_errors:
                raise
            decoded = [exc]
            if len(members) > 1 or decode is not None:  # which request failed: each alone (the others' answers are what they give alone)
                decoded = [_alone(generator, m[3], m[2]) for m in members]
            decoded *= len(members) // len(decoded)
        for (index, melody, config, plan, region), rows in zip(members, decoded):
            results[index] = rows if isinstance(rows, TunesmithError) else _best(generator, melody, config, plan, region, rows)
    return results


def _alone(generator, plan: Plan, config: RegenerateConfig):
    """One plan decoded alone, or its TunesmithError."""
    try:
        return generator.decode_plans([plan], config.generation())[0]
    except TunesmithError as exc:
        return exc


def _best(generator, melody: Melody, config: RegenerateConfig, plan: Plan, region: tuple[int, int],
          decoded) -> list[Melody]:  # fmt: skip
    """The ``config.num`` candidates under which the kept bars are most likely, distinct ones first;
    with trunks (``--join-bars``), the best of each version's own candidates, best version first."""
    tail = kept_tail(generator, melody, plan)
    ids = [row + tail for row in decoded.ids]
    scores = list(decoded.scored)
    original = tuple(generator.vocab.ids(melody.model_tokens))
    seen = {original}
    groups = [list(range(len(ids)))]
    if plan.trunks:
        per = len(ids) // plan.trunks
        groups = [list(range(t * per, (t + 1) * per)) for t in range(plan.trunks)]
    picked, new = [], set()
    for group in groups:
        order = sorted(group, key=lambda i: -scores[i])
        for i in order:  # new distinct regions first, best first; repeats (or the old bars) only if too few are new
            key = tuple(ids[i][: len(original)])
            if key not in seen:
                seen.add(key)
                new.add(i)
        mine = [i for i in order if i in new] + [i for i in order if i not in new]
        picked += mine[: config.num // len(groups)]
    picked.sort(key=lambda i: (i not in new, -scores[i]))
    return [_melody(generator, melody, plan, ids[i], scores[i], n, config, region) for n, i in enumerate(picked[: config.num])]


def plan_region(generator, melody: Melody, config: RegenerateConfig) -> tuple[Plan, tuple[int, int]]:
    """The plan that keeps everything but the region: the bars before it as the prefix, the bars
    after it (and the fixed notes) as fixed tokens, the suffix scored. Returns it and the
    region's ``(first, end)`` steps."""
    from tunesmith.generate.controls import Structure
    from tunesmith.generate.plan import Plan, make_seed, pitch_mask, resolve_kind

    check_model(generator, melody)
    song = melody.song
    tokens = melody.model_tokens
    first_bar, last_bar = parse_bars(config.bars)
    spans = bar_spans(song)
    numbers = sorted(spans)
    for bar in (first_bar, last_bar):
        if bar not in spans:
            raise TunesmithError(f"the melody has bars {numbers[0]}-{numbers[-1]}; there is no bar {bar}")
    start, end = spans[first_bar][0], spans[last_bar][1]
    # A note begun before the region and held into it belongs to its own bar: it stays whole.
    while start < end and tokens[start] == HOLD:
        start += 1
    if start == end:
        raise TunesmithError(f"bars {first_bar}-{last_bar} only hold a note begun earlier: nothing to regenerate")
    mode_id, meter_id, bar = resolve_kind(generator, song.mode, song.meter)
    stop = len(tokens) + (1 if melody.params.get("ended_by") == "end token" else 0)
    if config.horizon:  # the bars after the horizon are kept too, just not scored
        stop = min(stop, end + config.horizon * bar)
    shift = -song.transposition
    tonic_pc = tonic_pitch_class(song.key)
    vocab = generator.vocab
    fixed = {step: vocab.index[t] for step, t in enumerate(tokens) if end <= step < stop}
    if stop == len(tokens) + 1:
        fixed[len(tokens)] = vocab.end
    for bar_number, beat, pitch in parse_fixes(config.fix):
        step = fixed_step(song, spans, bar_number, beat, config.fix)
        if not start <= step < end:
            raise TunesmithError(f"--fix bar {bar_number} beat {beat:g} lies outside the regenerated bars "
                                 f"{first_bar}-{last_bar}")  # fmt: skip
        if pitch is None:  # a rest begins here
            fixed[step] = vocab.rest
            continue
        model_pitch = str(pitch - shift)
        if model_pitch not in vocab:
            low, high = vocab.pitches[0] + shift, vocab.pitches[-1] + shift
            raise TunesmithError(f"--fix {pitch_name(pitch)} is outside the pitches the model knows in this key "
                                 f"({pitch_name(low)}-{pitch_name(high)})")  # fmt: skip
        fixed[step] = vocab.index[model_pitch]
    controls = [Structure(None)]  # the kept bars after the region end the melody, not the model
    instrument = melody.params.get("instrument") or ""  # the melody keeps to its instrument's range
    mask = pitch_mask(vocab, tonic_pc, song.mode, shift, config.scale, config.range, instrument)
    if mask is not None:
        controls.append(mask)
    guard = copy_guard(generator, tokens[:start])
    if guard is not None:
        controls.append(guard)
    form = region_form(generator, melody, bar)
    if form is not None:
        controls.append(form)
    plan = Plan(vocab, config.candidates, song.mode, song.meter, tonic_pc, shift, mode_id, meter_id, bar,
                list(song.bar_starts), stop, vocab.ids(tokens[:start]), fixed=fixed, scored_from=end,
                controls=controls, seed=make_seed(config.seed), form=form)  # fmt: skip
    if config.join_bars and config.candidates > config.num:
        plan.trunks, plan.branch = config.num, max(start, end - config.join_bars * bar)
    return plan, (start, end)


def region_form(generator, melody: Melody, bar_length: int):
    """The form control of a melody composed with a form (``params["form"]``), so the new bars
    read the form inputs of their place and a restating phrase still restates (None: no form)."""
    text = melody.params.get("form")
    if text is None or text == "":
        return None
    if not isinstance(text, str):
        raise TunesmithError(f"the melody's form must be text such as 'A2 A2 B2 A2', got {text!r}")
    from tunesmith.generate.form import FormControl, final_pitch_ids
    from tunesmith.meter import beat_steps
    from tunesmith.generate.layout import melody_form

    song = melody.song
    form = melody_form(text, str(melody.params.get("form_source") or ""), song.phrase_starts, len(melody.tokens),
                       bar_length, song.bar_starts[0] if song.bar_starts else 0)  # fmt: skip
    vocab = generator.vocab
    model_tonic = 0 if song.mode == "major" else 9
    return FormControl(form, vocab, [vocab.index[str(p)] for p in vocab.pitches if p % 12 == model_tonic],
                       final_ids=final_pitch_ids(vocab, song.mode), final_steps=beat_steps(song.meter, song.steps_per_quarter))  # fmt: skip


def copy_guard(generator, prefix: list[str]):
    """The originality guard for the new bars (the model's index and default ``--max-copy``), or
    None when the model has no index or the kept bars before the region already copy more than
    that (an opened real tune: the guard cannot undo what the musician chose to keep)."""
    originality = generator.originality()
    if originality is None:
        return None
    from tunesmith.generate.copyguard import CopyGuard

    index, default = originality
    guard = CopyGuard(index, default, generator.vocab)
    try:
        guard.start(1, generator.vocab.ids(prefix))
    except TunesmithError:
        return None
    return guard


def kept_tail(generator, melody: Melody, plan: Plan) -> list[int]:
    """Model-key ids of the kept music past the plan's last (scored) step, ``</s>`` included."""
    tokens = melody.model_tokens
    tail = generator.vocab.ids(tokens[plan.total_steps :])
    if plan.total_steps < len(tokens) + 1 and melody.params.get("ended_by") == "end token":
        tail.append(generator.vocab.end)
    return tail


def fixed_step(song: Song, spans: dict[int, tuple[int, int]], bar: int, beat: float, text: str) -> int:
    """Step of ``bar`` ``beat`` (beats of the meter's note value: quarters in 3/4, eighths in 6/8)."""
    denominator = int(song.meter.split("/")[1])
    unit = song.steps_per_quarter * 4 / denominator
    if bar not in spans:
        raise TunesmithError(f"--fix bar {bar}: the melody has no bar {bar}")
    offset = (beat - 1) * unit
    bar_start, bar_end = spans[bar]
    if beat < 1 or offset != int(offset) or bar_start + int(offset) >= bar_end:
        raise TunesmithError(f"--fix bar {bar} beat {beat:g} is not a step of that bar")
    return bar_start + int(offset)


def check_model(generator, melody: Melody) -> None:
    """A melody can only go back into the model that made it."""
    made_by = melody.params.get("model_fingerprint")
    if made_by is None:
        raise TunesmithError("this melody file records no model fingerprint (written by an older tunesmith): "
                             "generate it again to regenerate parts of it")  # fmt: skip
    if made_by != generator.fingerprint:
        raise TunesmithError(f"this melody was made by another model ({melody.params.get('model', '?')}): "
                             "pass that model with --model")  # fmt: skip
    unknown = [t for t in melody.model_tokens if t not in generator.vocab]
    if unknown:
        raise TunesmithError(f"the melody holds token {unknown[0]!r} this model does not know")


def restrike(original: list[str], tokens: list[str], end: int) -> list[str]:
    """``tokens`` (a regeneration of ``original`` whose region ends at step ``end``) with the
    kept bar after the region sounding as before: a note or rest that ``original`` held across
    ``end`` is struck again there when the new region's last note is another (a rest stays a rest
    instead of turning into the new note held on; a tie into the kept bar is kept when the new
    note has the held pitch). Pure: ``tokens`` is not changed."""
    if not (end < len(tokens) and end < len(original) and original[end] == HOLD and tokens[end] == HOLD):
        return tokens
    pitch = sounding_pitch(original, end)
    if sounding_pitch(tokens, end) == pitch:
        return tokens
    return tokens[:end] + [REST if pitch is None else str(pitch)] + tokens[end + 1 :]


def sounding_pitch(tokens: list[str], step: int) -> int | None:
    """The pitch sounding at ``step`` of ``tokens`` (None for a rest, or before the first note)."""
    for token in reversed(tokens[: step + 1]):
        if token != HOLD:
            return int(token) if is_pitch(token) else None
    return None


def _melody(generator, original: Melody, plan: Plan, ids: list[int], score: float, index: int,
            config: RegenerateConfig, region: tuple[int, int]) -> Melody:  # fmt: skip
    body, ended = plan.melody_tokens(ids)
    body = restrike(original.tokens, body, region[1])
    song = replace(original.song, notes=decode_tokens(body),
                   title=f"{original.song.title or 'Melody'} (bars {config.bars} anew, {index + 1})")  # fmt: skip
    if original.song.chords:  # the new bars get chords of their own, chosen the same way
        from tunesmith.harmony import harmonize_with_shipped

        song.chords = harmonize_with_shipped(song, original.params.get("chord_span", "auto"))
    params = dict(original.params)
    params.update(index=index, model=generator.source, model_fingerprint=generator.fingerprint,
                  ended_by="end token" if ended else "length")  # fmt: skip
    params.pop("copy", None)  # the old melody's; measured again for the new one
    originality = generator.originality()
    if originality is not None:
        from tunesmith.generate.copyguard import CopyGuard, describe_copy

        guard = next((c for c in plan.controls if isinstance(c, CopyGuard)), None)
        params["copy"] = describe_copy(originality[0], song, guard.max_copy if guard else None)
    params["regenerated"] = asdict(config) | {
        "seed": plan.seed, "region_steps": list(region), "form": plan.form.form.text if plan.form is not None else None,
        "suffix_log_likelihood": round(score, 4) if region[1] < plan.total_steps else None,
        "scored_steps": [region[1], plan.total_steps],
        "from": original.params.get("title") or original.song.title,
    }  # fmt: skip
    return Melody(body, song, params)

