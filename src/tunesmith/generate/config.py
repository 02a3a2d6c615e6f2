"""``GenerationConfig``: one generation request, stated once.

The CLI's flags are derived from these fields (their comments are the ``--help`` text, their
metadata the bounds; see :mod:`tunesmith.settings`), and :meth:`GenerationConfig.validate`
checks the Python API and the CLI alike, with one-line errors naming the setting.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tunesmith.errors import TunesmithError
from tunesmith.instruments import INSTRUMENTS
from tunesmith.settings import bounds, check_fields
from tunesmith.song import MODES, bar_steps, tonic_pitch_class

DEFAULT_BARS = 16
SCHEMES = ("sample", "greedy", "mixed", "top-k", "top-p", "beam")
MAX_BARS = 1024  # documented limits, enforced at validation
MAX_STEPS = 1024 * 48  # 1,024 bars of the longest bar the model knows (48 steps)
MAX_NUM = 4096
MAX_BEAM = 64
MAX_SEED = 2**63 - 1
MAX_CANDIDATES = 16
INSTRUMENT_NAMES = tuple(INSTRUMENTS)
# Defaults chosen on the DEV half of the erk validation songs (benchmarks/results/structure-giveaways.md):
CADENCE = 1.0  # tonic bonus at the close (FormControl's TONIC_BIAS), calibrated for models/erk.pt on the calibration songs with the ending rule: 81.2% tonic endings (songs 82.0%; 1.25 gave 83.8%, 0.75 77.9%; BENCHMARKS.md, "Form-aware model")
CANDIDATES = 2  # two candidates, the critic's choice kept: on the calibration songs the classifier's accuracy 65.2% -> 60.2% (4 candidates 60.9%; benchmarks/results/critic.md)
MOTIF = 0.0  # motif echo (MotifEcho) off: 1.0-2.0 raised repeated patterns on dev (15.7% -> 16.6-18.3%, songs 20.7%) but also the classifier (58% -> 60-63%) and cost form compliance (98% -> 94-96%)


@dataclass
class GenerationConfig:
    """One generation request. Keys and ranges are in the output key."""

    num: int = field(default=1, metadata=bounds(1, MAX_NUM))  # melodies to compose (large counts run in chunks)
    bars: int | None = field(default=None, metadata=bounds(1, MAX_BARS))  # length in bars of the meter (default 16)
    steps: int | None = field(default=None, metadata=bounds(1, MAX_STEPS))  # length in time steps instead of bars
    mode: str | None = field(default=None, metadata={"choices": MODES})  # major or minor (default: the primer file's, else major)
    meter: str | None = None  # time signature such as 3/4 or 6/8 (default: the primer file's, else 4/4)
    key: str | None = None  # output key's tonic: C, F#, Bb… (default C major / A minor)
    scheme: str = field(default="sample", metadata={"choices": SCHEMES})  # how each next step is chosen
    temperature: float = field(default=1.0, metadata=bounds(0.0, 100.0))  # > 0 (greedy ignores it); lower is safer, higher wilder
    top_k: int = field(default=8, metadata=bounds(1, 10_000))  # tokens kept by --scheme top-k
    top_p: float = field(default=0.9, metadata=bounds(0.0, 1.0, low_open=True))  # probability mass kept by --scheme top-p
    mixed_p: float = field(default=0.5, metadata=bounds(0.0, 1.0))  # chance of argmax per step with --scheme mixed
    beam_size: int = field(default=4, metadata=bounds(1, MAX_BEAM))  # beams (and branches per beam) with --scheme beam
    candidates: int = field(default=CANDIDATES, metadata=bounds(1, MAX_CANDIDATES))  # melodies composed per melody asked for, the most song-like by the model's critic kept (1 = the first; a model without a critic composes one)
    seed: int | None = field(default=None, metadata=bounds(0, MAX_SEED))  # makes the run reproducible (default: a fresh one, recorded)
    primer: str = ""  # opening in tokens, in the output key: "67 _ _ _ 65 _ 64 _"
    primer_file: str = ""  # opening from a file (ABC, kern, MusicXML, MIDI)
    scale: bool = False  # only pitches of the output key's scale
    range: str = field(default="", metadata={"metavar": "LOW-HIGH"})  # pitch range in the output key, e.g. C4-G5
    full_length: bool = False  # never end before the requested length (no end token)
    instrument: str | None = field(default=None, metadata={"choices": INSTRUMENT_NAMES})  # fiddle, whistle, flute, accordion, voice or piano: keeps to its playable range; sets its sound and usual tempo
    chords: bool = False  # add chord symbols and a chord track, chosen by the shipped harmoniser (learned from the Nottingham tunes)
    chord_span: str = field(default="auto", metadata={"choices": ("auto", "bar", "half")})  # one chord per bar or half bar; auto = what the harmoniser learned for the meter
    max_copy: int | None = field(default=None, metadata=bounds(0, 100_000))  # most notes in a row a melody may share with one training tune, in any key (default: the model's corpus figure; 0 = no limit)
    form: str | None = field(default=None, metadata={"metavar": "FORM"})  # phrase form: AABA, "A A' B A", "A4 A4 B4 A4", or none (default: a form drawn from the corpus's, for a form-aware model)
    pickup: float | None = field(default=None, metadata=bounds(0.0, 16.0))  # with a form: the upbeat before the first bar line, in quarter notes, with which every phrase begins (default: drawn with the form from the corpus's songs; 0 = none)
    cadence: float = field(default=CADENCE, metadata=bounds(0.0, 30.0))  # with a form: logit bonus of the tonic (and of holding it) in the melody's closing half bar, whose last beat keeps to the degrees songs end on; 0 = the model's own cadence
    motif: float = field(default=MOTIF, metadata=bounds(0.0, 30.0))  # logit bonus for going on as a fragment of the melody went on before (motifs come back whole); 0 = off

    def validate(self) -> GenerationConfig:
        """Check every setting; raises TunesmithError with a one-line message naming it."""
        check_fields(self)
        if self.bars is not None and self.steps is not None:
            raise TunesmithError("give --bars or --steps, not both")
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
        if self.scheme != "greedy" and self.temperature <= 0:
            raise TunesmithError(f"--temperature must be > 0 with --scheme {self.scheme}, got {self.temperature!r}")
        from tunesmith.generate.layout import is_free

        if self.form is not None:
            from tunesmith.form.labels import parse_form

            if not is_free(self.form):
                parse_form(self.form)
                if self.steps is not None:
                    raise TunesmithError("give --bars with --form, not --steps (a form is counted in bars)")
        if self.pickup is not None and (self.steps is not None or self.primer_file or is_free(self.form)):
            raise TunesmithError("--pickup goes with a form (drawn or --form) and --bars, not with --steps, --form none or "
                                 "--primer-file (whose own pickup counts)")  # fmt: skip
        if self.primer and self.primer_file:
            raise TunesmithError("give --primer or --primer-file, not both")
        if self.primer:
            from tunesmith.generate.primer import parse_primer

            parse_primer(self.primer)
        if self.range:
            from tunesmith.generate.constraints import parse_range

            parse_range(self.range)
        return self
