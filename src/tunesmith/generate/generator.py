"""``Generator``: load a checkpoint once, then compose batches of melodies with it.

Generation is stateful: the LSTM state is carried from step to step (O(1) work per step) and
all requested melodies advance together as one batch. The model writes in C major / A minor;
the chosen key is reached by transposing its output (constraints are converted the other way).
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from tunesmith.encoding import END, Vocabulary, decode_tokens, is_pitch
from tunesmith.errors import TunesmithError
from tunesmith.generate.melody import Melody
from tunesmith.generate.primer import parse_primer, primer_tokens_of_song, read_primer_file, to_model_key
from tunesmith.song import MODES, Song, bar_steps, key_name, step_positions, tonic_pitch_class, transposition_to

DEFAULT_BARS = 16
SCHEMES = ("sample", "greedy", "mixed", "top-k", "top-p", "beam")


def full_bar_starts(starts: list[int], total_steps: int, bar_length: int) -> list[int]:
    """Every downbeat of a melody: the known ``starts``, then regular bars after the last one."""
    result = [s for s in sorted(set(starts)) if s < total_steps] or [0]
    while result[-1] + bar_length < total_steps:
        result.append(result[-1] + bar_length)
    return result


def default_model_path() -> Path:
    """The shipped model: installed as package data (``tunesmith/models/erk.pt``), else
    ``models/erk.pt`` of the source tree (an editable install or a checkout)."""
    from tunesmith.checkpoint import shipped_model_path

    return shipped_model_path()


@dataclass
class GenerationConfig:
    """One generation request. Keys and ranges are in the output key."""

    num: int = 1  # melodies, generated together as one batch
    bars: int | None = None  # length in bars of the meter; default 16 when steps is not given
    steps: int | None = None  # length in time steps (instead of bars)
    mode: str | None = None  # major | minor; None = the primer file's, else major
    meter: str | None = None  # "3/4"…; None = the primer file's, else 4/4
    key: str | None = None  # output tonic ("D", "F#", "Bb"); None = C (major) / A (minor)
    scheme: str = "sample"  # sample | greedy | mixed | top-k | top-p | beam
    temperature: float = 1.0  # > 0; < 1 safer, > 1 wilder
    top_k: int = 8  # tokens kept by top-k
    top_p: float = 0.9  # probability mass kept by top-p
    mixed_p: float = 0.5  # chance of argmax per step in the mixed scheme
    beam_size: int = 4  # beams (and branches per beam) in beam search
    seed: int | None = None  # None = a fresh seed, recorded in each melody's params
    primer: str = ""  # tokens in the output key, "67 _ _ _ 65 _"
    primer_file: str = ""  # a tune in any format the corpus reader takes
    scale: bool = False  # only pitches of the output key's scale
    range: str = ""  # pitch range in the output key, "C4-G5"

    def validate(self) -> GenerationConfig:
        if self.num < 1:
            raise TunesmithError(f"--num must be >= 1, got {self.num!r}")
        if self.bars is not None and self.steps is not None:
            raise TunesmithError("give --bars or --steps, not both")
        if self.bars is not None and self.bars <= 0:
            raise TunesmithError(f"--bars must be > 0, got {self.bars!r}")
        if self.steps is not None and self.steps <= 0:
            raise TunesmithError(f"--steps must be > 0, got {self.steps!r}")
        if self.mode is not None and self.mode not in MODES:
            raise TunesmithError(f"unknown mode {self.mode!r}; known: {', '.join(MODES)}")
        if self.key is not None:
            try:
                tonic_pitch_class(self.key)
            except ValueError:
                raise TunesmithError(f"unknown key {self.key!r}: use a tonic such as C, F#, Bb or E-") from None
        if self.meter is not None:
            try:
                bar_steps(self.meter, 4)
            except (ValueError, ZeroDivisionError):
                raise TunesmithError(f"cannot read meter {self.meter!r}: write it like 3/4 or 6/8") from None
        if self.scheme not in SCHEMES:
            raise TunesmithError(f"unknown sampling scheme {self.scheme!r}; known: {', '.join(SCHEMES)}")
        if self.scheme != "greedy" and self.temperature <= 0:
            raise TunesmithError(f"--temperature must be > 0 with --scheme {self.scheme}, got {self.temperature!r}")
        if self.scheme == "top-k" and self.top_k < 1:
            raise TunesmithError(f"--top-k must be >= 1, got {self.top_k!r}")
        if self.scheme == "top-p" and not 0 < self.top_p <= 1:
            raise TunesmithError(f"--top-p must be in (0, 1], got {self.top_p!r}")
        if self.scheme == "mixed" and not 0 <= self.mixed_p <= 1:
            raise TunesmithError(f"--mixed-p must be in [0, 1], got {self.mixed_p!r}")
        if self.scheme == "beam" and self.beam_size < 1:
            raise TunesmithError(f"--beam-size must be >= 1, got {self.beam_size!r}")
        if self.primer and self.primer_file:
            raise TunesmithError("give --primer or --primer-file, not both")
        if self.primer:
            parse_primer(self.primer)
        if self.range:
            from tunesmith.generate.constraints import parse_range

            parse_range(self.range)
        return self


@dataclass
class _Plan:
    """A request resolved against one checkpoint: everything the sampling loop needs."""

    mode: str
    meter: str
    tonic_pc: int
    shift: int  # semitones from the model's key to the output key
    primer: list[str]  # model-key tokens
    bar_starts: list[int]
    total_steps: int
    seed: int


class Generator:
    """A loaded model plus its vocabulary and conditioning lists."""

    def __init__(self, model, payload: dict[str, Any], device, source: str = ""):
        self.model, self.payload, self.device, self.source = model, payload, device, source
        self.vocab = Vocabulary(payload["vocab"])
        self.modes, self.meters = list(payload["modes"]), list(payload["meters"])
        self.steps_per_quarter = int(payload["steps_per_quarter"])

    @classmethod
    def from_checkpoint(cls, path: str | Path | None = None, device: str = "auto") -> Generator:
        """Load ``path`` (default: the shipped ``models/erk.pt``) onto ``device`` (auto = CUDA/MPS/CPU)."""
        from tunesmith.checkpoint import Checkpoint
        from tunesmith.model import pick_device

        if path is None:
            path = default_model_path()
            if not path.is_file():
                raise TunesmithError(f"the shipped model {str(path)!r} is missing: train one or pass --model PATH")
        target = pick_device(device)
        checkpoint = Checkpoint.load(path)
        return cls(checkpoint.build_model(target), checkpoint.to_dict(), target, str(path))

    def plan(self, config: GenerationConfig) -> _Plan:
        """Resolve a request against this model; raises TunesmithError before any work is done."""
        from tunesmith.config import DEFAULT_DURATIONS

        config.validate()
        primer_song = None
        if config.primer_file:
            durations = self.payload.get("config", {}).get("corpus", {}).get("accepted_durations", DEFAULT_DURATIONS)
            primer_song = read_primer_file(config.primer_file, self.steps_per_quarter, durations)
        mode = config.mode or (primer_song.mode if primer_song else "major")
        meter = config.meter or (primer_song.meter if primer_song else "4/4")
        if mode not in self.modes:
            raise TunesmithError(f"this model does not know mode {mode!r}; known: {', '.join(self.modes[1:])}")
        if meter not in self.meters:
            raise TunesmithError(f"this model does not know meter {meter!r}; known: {', '.join(self.meters[1:])}")
        try:
            bar = bar_steps(meter, self.steps_per_quarter)
        except ValueError as exc:
            raise TunesmithError(str(exc)) from None
        model_tonic = 0 if mode == "major" else 9
        tonic_pc = tonic_pitch_class(config.key) if config.key else model_tonic
        shift = transposition_to(model_tonic, mode, tonic_pc)
        if primer_song is not None:
            primer = to_model_key(primer_tokens_of_song(primer_song), 0, self.vocab)
            # In another meter only the first downbeat of the primer still holds.
            bar_starts = primer_song.bar_starts if primer_song.meter == meter else primer_song.bar_starts[:1]
        else:
            primer = to_model_key(parse_primer(config.primer), shift, self.vocab)
            bar_starts = [0]
        total = config.steps or bar_starts[0] + (config.bars or DEFAULT_BARS) * bar
        if len(primer) >= total:
            raise TunesmithError(f"the primer is {len(primer)} steps, as long as the requested {total}: ask for more")
        seed = config.seed if config.seed is not None else random.SystemRandom().randrange(2**31)
        return _Plan(mode, meter, tonic_pc, shift, primer, bar_starts, total, seed)

    def constraint_mask(self, config: GenerationConfig, plan: _Plan):
        """The ``--scale``/``--range`` mask ``[V]`` in model-key terms; an all-forbidding set is an error."""
        import torch

        from tunesmith.generate.constraints import combine, parse_range, range_mask, require_pitches, scale_mask

        masks, words = [torch.ones(len(self.vocab), dtype=torch.bool)], []
        if config.scale:
            masks.append(scale_mask(self.vocab, plan.tonic_pc, plan.mode, plan.shift))
            words.append(f"scale of {key_name(plan.tonic_pc, plan.mode)} {plan.mode}")
        if config.range:
            masks.append(range_mask(self.vocab, *parse_range(config.range), plan.shift))
            words.append(f"range {config.range}")
        return require_pitches(combine(*masks), self.vocab, ", ".join(words) or "none").to(self.device)

    def generate(self, config: GenerationConfig | None = None, **settings: Any) -> list[Melody]:
        """Compose ``config.num`` melodies; keyword ``settings`` override fields of ``config``.

        Returns one Melody per request row, each with its tokens in the output key and params.
        """
        import torch

        from tunesmith.generate.search import beam_search, sample_batch

        config = replace(config or GenerationConfig(), **settings)
        plan = self.plan(config)
        mask = self.constraint_mask(config, plan)
        positions = step_positions(plan.bar_starts, plan.total_steps, bar_steps(plan.meter, self.steps_per_quarter))
        generator = torch.Generator(device=self.device).manual_seed(plan.seed)
        inputs = dict(model=self.model, vocab=self.vocab, primer=self.vocab.ids(plan.primer), positions=positions,
                      mode=self.modes.index(plan.mode), meter=self.meters.index(plan.meter), mask=mask,
                      num=config.num, generator=generator)  # fmt: skip
        if config.scheme == "beam":
            rows = beam_search(**inputs, beam_size=config.beam_size, temperature=config.temperature)
        else:
            rows = sample_batch(**inputs, scheme=config.scheme, temperature=config.temperature,
                                top_k=config.top_k, top_p=config.top_p, mixed_p=config.mixed_p)  # fmt: skip
        return [self._melody(ids, index, config, plan) for index, ids in enumerate(rows)]

    def _melody(self, ids: list[int], index: int, config: GenerationConfig, plan: _Plan) -> Melody:
        tokens = self.vocab.tokens_of(ids)
        ended = END in tokens
        body = tokens[: tokens.index(END)] if ended else tokens
        body = [str(int(t) + plan.shift) if is_pitch(t) else t for t in body]
        key = key_name(plan.tonic_pc, plan.mode)
        bar_starts = full_bar_starts(plan.bar_starts, len(body), bar_steps(plan.meter, self.steps_per_quarter))
        song = Song(
            notes=decode_tokens(body), steps_per_quarter=self.steps_per_quarter, meter=plan.meter,
            bar_starts=bar_starts, mode=plan.mode, key=key,
            transposition=-plan.shift, title=f"Melody {index + 1} in {key.replace('-', 'b')} {plan.mode}",
            source=f"tunesmith generate ({Path(self.source).name or 'model'})",
        )  # fmt: skip
        params = asdict(config) | {
            "mode": plan.mode, "meter": plan.meter, "key": key, "seed": plan.seed, "index": index,
            "steps": plan.total_steps if config.steps else None,
            "bars": None if config.steps else config.bars or DEFAULT_BARS,
            "model": self.source, "ended_by": "end token" if ended else "length", "transposition": plan.shift,
        }  # fmt: skip
        return Melody(body, song, params)


def generate_melodies(model: str | Path | None = None, device: str = "auto", **settings: Any) -> list[Melody]:
    """One-call API: load ``model`` and generate with ``settings`` (the fields of GenerationConfig)."""
    return Generator.from_checkpoint(model, device).generate(GenerationConfig(**settings))

