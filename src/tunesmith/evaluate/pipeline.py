"""``evaluate``: one checkpoint → prediction scores, generated-vs-real statistics, dry-out,
originality and a human-or-not classifier, as one results dictionary.

The stages share their expensive inputs: the corpus is prepared once (cached), the generated
set is composed in one batch per (mode, meter), and the n-gram counts and the originality
index are each built once from the training split.
"""

from __future__ import annotations

import hashlib
import math
import random
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from tunesmith.config import MAX_SEED, MAX_THREADS
from tunesmith.errors import TunesmithError
from tunesmith.evaluate.classifier import ClassifierConfig
from tunesmith.evaluate.compare import CompareConfig
from tunesmith.evaluate.dryout import DryoutConfig
from tunesmith.evaluate.ngram import NGramConfig
from tunesmith.song import Song, bar_steps


MAX_MELODIES = 100_000  # generated melodies one evaluation compares (the held-out sets hold a few hundred songs)


@dataclass
class EvaluateConfig:
    """Everything ``tunesmith evaluate`` does, with its sizes."""

    num: int = 200  # generated melodies compared with the real ones; 0 = one per evaluated real song
    bars: int = 0  # length of each generated melody in bars; 0 = the lengths of the real songs
    seed: int = 0  # generation, subsampling and cross-validation seed
    corpus: list[str] = field(default_factory=list)  # evaluation sources; [] = the model's validation split
    half: str = "all"  # all | dev | test: one fixed half of the evaluation set (choose settings on dev, report test); calib: a fixed fifth of the training songs
    copy_bars: float = 2.0  # a shared stretch longer than this many bars counts as copying
    form: str = ""  # a form every generated melody is asked for ("AABA"); "" = the generator's default
    device: str = "auto"  # auto | cpu | cuda | mps
    threads: int = 1  # torch CPU threads; 1 is fastest for step-by-step generation, 0 = torch's default
    progress: bool = True  # tqdm bars on stderr
    ngram: NGramConfig = field(default_factory=NGramConfig)
    compare: CompareConfig = field(default_factory=CompareConfig)
    dryout: DryoutConfig = field(default_factory=DryoutConfig)
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)

    def validate(self) -> EvaluateConfig:
        from tunesmith.config import check_fields

        check_fields(self, "evaluate")  # types and finite numbers, as for every config
        for name in ("ngram", "compare", "dryout", "classifier"):
            check_fields(getattr(self, name), f"evaluate.{name}")
        if not 0.0 < self.copy_bars <= 64.0:
            raise TunesmithError(f"evaluate.copy_bars must be in (0, 64], got {self.copy_bars!r}")
        for name, high in (("num", MAX_MELODIES), ("seed", MAX_SEED), ("threads", MAX_THREADS)):
            if not 0 <= getattr(self, name) <= high:
                raise TunesmithError(f"--{name} must be in 0..{high:,}, got {getattr(self, name)!r}")
        if self.num < 2 and self.num != 0:
            raise TunesmithError(f"--num must be at least 2 to compare sets (0 = one per real song), got {self.num!r}")
        if self.form:
            from tunesmith.form import parse_form

            parse_form(self.form)  # a bad form fails before any work, with parse_form's one-line error
        if self.half not in HALVES:
            raise TunesmithError(f"--half must be one of {', '.join(HALVES)}, got {self.half!r}")
        if self.bars < 0:
            raise TunesmithError(f"--bars must be >= 0 (0 = match the real songs' lengths), got {self.bars!r}")
        if self.dryout.num < 0 or (self.dryout.num and self.dryout.bars < 4):
            raise TunesmithError(f"dry-out needs >= 0 melodies of >= 4 bars, got {self.dryout.num} of {self.dryout.bars}")
        return self


HALVES = ("all", "dev", "test", "calib")  # the whole evaluation set, one of its two fixed halves, or the calibration songs
CALIBRATION_SHARE = 5  # one training title group in this many is a calibration song


def calibration_group(group: str) -> bool:
    """Whether a training song's title group is in the fixed calibration set (about a fifth).

    Generation settings (sampling biases and the like, not the model) may be calibrated by
    comparing melodies generated in the shape of these songs with the songs themselves, so that
    no validation song — dev or test — is looked at while choosing them. The model has seen
    these songs, so they calibrate how the sampler's output matches what the model learned, not
    how well it generalises. A stable hash of the group, salted apart from the other splits.
    """
    return hashlib.sha256(f"calibration:{group}".encode()).digest()[0] % CALIBRATION_SHARE == 0


def evaluation_half(group: str) -> str:
    """The fixed half ("dev" or "test") of the evaluation set a song's title group falls in.

    Settings may be chosen on the dev half and confirmed on the test half, so that no figure
    reported on the test half was tuned on it. The half is a stable hash of the group (the
    normalised title the train/val split also groups by, salted differently from that split),
    so variants of one song never straddle the halves and the split never changes.
    """
    return "dev" if hashlib.sha256(f"evaluation-half:{group}".encode()).digest()[0] % 2 == 0 else "test"


def select_half(examples: list, half: str) -> list:
    """The examples of one half (:func:`evaluation_half` of each ``example.group``); "all" = every one."""
    if half not in HALVES:
        raise TunesmithError(f"the evaluation half must be one of {', '.join(HALVES)}, got {half!r}")
    if half == "calib":
        return [e for e in examples if calibration_group(e.group)]
    return list(examples) if half == "all" else [e for e in examples if evaluation_half(e.group) == half]


def _allocate(real: list[Song], num: int, meters: list[str]) -> list[tuple[str, str, int]]:
    """Split ``num`` generated melodies over (mode, meter) in the real set's proportions
    (largest remainder), leaving out meters the model never saw."""
    counts = Counter((s.mode, s.meter) for s in real if s.meter in meters)
    if not counts:
        return [("major", meters[1] if len(meters) > 1 else "4/4", num)]
    total = sum(counts.values())
    shares = {k: num * v / total for k, v in counts.items()}
    sizes = {k: int(v) for k, v in shares.items()}
    for key in sorted(shares, key=lambda k: shares[k] - sizes[k], reverse=True)[: num - sum(sizes.values())]:
        sizes[key] += 1
    return [(mode, meter, n) for (mode, meter), n in sorted(sizes.items()) if n > 0]


def _lengths(real: list[Song], mode: str, meter: str, count: int, rng: random.Random) -> list[int]:
    """``count`` lengths in whole bars drawn from the real songs of this kind (all songs if none)."""
    kind = [s for s in real if (s.mode, s.meter) == (mode, meter)] or real
    bars = [max(1, math.ceil(s.total_steps / bar_steps(meter, s.steps_per_quarter))) for s in kind]
    return [rng.choice(bars) for _ in range(count)]


def generate_set(generator, real: list[Song], num: int, bars: int, seed: int, progress: bool) -> list[Song]:
    """The songs of :func:`generate_melody_set`."""
    return [m.song for m in generate_melody_set(generator, real, num, bars, seed, progress)]


SEED_STRIDE = 1_000_003  # a set's melody i gets seed ``seed * SEED_STRIDE + i``: sets of different seeds never share one


def generate_melody_set(generator, real: list[Song], num: int, bars: int, seed: int, progress: bool,
                        form: str = "", settings: dict | None = None) -> list:  # fmt: skip
    """``num`` melodies shaped like the real set: its modes and meters and, with ``bars = 0``, its
    lengths (a set of longer melodies would differ in every length-dependent feature).

    Each melody is its own one-melody request with its own seed (``seed * SEED_STRIDE + i``), as
    a user asking ``tunesmith generate`` for one melody gets it: so each draws its own form from
    the corpus (a request for several melodies shares one drawn form, which would make a set of
    one kind and length a set of one form). The requests go through
    :meth:`~tunesmith.generate.Generator.generate_batch` (decoded together, each as it would be
    alone). ``form`` is passed to the generator as its ``form`` setting (a TunesmithError when
    this generator takes none); ``settings`` are other generation settings (default: none, i.e.
    the defaults of :class:`~tunesmith.generate.GenerationConfig`). Returns
    :class:`~tunesmith.generate.Melody` objects: their ``params`` say which form each was asked for.
    """
    from dataclasses import fields

    from tqdm import tqdm

    from tunesmith.generate import GenerationConfig

    extra = dict(settings or {})
    if form:
        if "form" not in {f.name for f in fields(GenerationConfig)}:
            raise TunesmithError("this generator takes no form setting: --form needs the form-aware generator")
        extra["form"] = form

    rng = random.Random(seed)
    requests = []
    for mode, meter, count in _allocate(real, num, generator.meters):
        lengths = [bars] * count if bars else _lengths(real, mode, meter, count, rng)
        requests += [(mode, meter, length) for length in sorted(lengths)]
    configs = [GenerationConfig(num=1, bars=length, mode=mode, meter=meter, seed=seed * SEED_STRIDE + i, **extra)
               for i, (mode, meter, length) in enumerate(requests)]  # fmt: skip
    melodies = []
    chunk = 256  # requests handed over at once (the progress bar moves per chunk)
    for first in tqdm(range(0, len(configs), chunk), desc="generating", unit="chunk", disable=not progress, leave=False):
        for result in generator.generate_batch(configs[first : first + chunk]):
            melodies += result
    return melodies


def requested_form(melody) -> str | None:
    """The form a generated melody was asked for (``params["form"]``, as text), None when none."""
    form = melody.params.get("form")
    if not form:
        return None
    if isinstance(form, list | tuple):  # a parsed form: FormPhrase objects, their dicts, or labels
        from tunesmith.form import FormPhrase

        phrases = [FormPhrase(**p) if isinstance(p, dict) else p for p in form]
        return " ".join(f"{p.label}{p.bars or ''}" if isinstance(p, FormPhrase) else str(p) for p in phrases)
    return str(form)


def example_songs(songs: list[Song], count: int, seed: int, min_bars: int = 6) -> list[Song]:
    """``count`` songs of at least ``min_bars`` bars drawn at random (seeded) for the
    self-similarity figure (any songs when too few are that long)."""
    long = [s for s in songs if s.total_steps >= min_bars * bar_steps(s.meter, s.steps_per_quarter)]
    pool = long if len(long) >= count else songs
    return random.Random(seed).sample(pool, min(count, len(pool)))


def _load_sets(payload: dict[str, Any], config: EvaluateConfig, dataset=None):
    """(training split, validation split, evaluation examples, description of the evaluation set)."""
    from tunesmith.config import Config
    from tunesmith.corpus import prepare

    run_config = Config.from_dict(payload["config"])
    if dataset is None:  # the run's own corpus, rebuilt from its config (a cache hit after training)
        dataset = prepare(run_config.corpus, run_config.encoding, progress=config.progress)
    train, val = dataset.split("train"), dataset.split("val")
    sources = dataset.report.get("sources") or run_config.corpus.sources
    half = "" if config.half == "all" else f", {config.half} half"
    if config.half == "calib":
        if config.corpus:
            raise TunesmithError("--half calib reads the model's own training songs; it takes no --corpus")
        own = [e for e in train if not e.extra]  # the style validated on, not corpus.train_sources' songs
        return train, val, select_half(own, "calib"), "calibration songs (a fixed fifth of the training split) of " + ", ".join(sources)
    if not config.corpus:
        return train, val, select_half(val, config.half), "validation split of " + ", ".join(sources) + half
    other = prepare(replace(run_config.corpus, sources=list(config.corpus), train_sources=[]), run_config.encoding,
                    progress=config.progress)  # fmt: skip
    return train, val, select_half(other.examples, config.half), ", ".join(config.corpus) + half


def evaluate(model_path: str | Path, config: EvaluateConfig | None = None, dataset=None) -> dict[str, Any]:
    """Evaluate a checkpoint; returns the results that ``report.write_report`` turns into files.

    ``dataset`` (a :class:`~tunesmith.corpus.Dataset`) replaces the corpus named in the
    checkpoint's config: its training split trains the n-gram and the originality index, its
    validation split is the default evaluation set. Raises TunesmithError for an unreadable
    checkpoint or an evaluation set the model cannot read.
    """
    import torch

    config = (config or EvaluateConfig()).validate()
    threads = torch.get_num_threads()
    if config.threads:
        # Per-step generation at batch ~20 is dominated by thread hand-offs: one thread is 2-50x faster.
        torch.set_num_threads(config.threads)
    try:
        return _evaluate(model_path, config, dataset)
    finally:
        torch.set_num_threads(threads)


def _evaluate(model_path: str | Path, config: EvaluateConfig, dataset) -> dict[str, Any]:
    from tqdm import tqdm

    from tunesmith.evaluate.classifier import discriminate
    from tunesmith.evaluate.compare import compare_sets
    from tunesmith.evaluate.dryout import dryout
    from tunesmith.evaluate.metrics import feature_table
    from tunesmith.evaluate.ngram import NGramModel
    from tunesmith.evaluate.originality import OriginalityIndex, originality
    from tunesmith.evaluate.structure import structure_summary
    from tunesmith.generate import Generator
    from tunesmith.likelihood import evaluate_model, prediction_metrics

    timings: dict[str, float] = {}
    started = time.perf_counter()
    generator = Generator.from_checkpoint(model_path, config.device)  # a bad checkpoint fails before any bar shows
    stages = tqdm(total=7, desc="evaluate", unit="stage", disable=not config.progress)

    def done(name: str, started: float) -> None:
        timings[name] = round(time.perf_counter() - started, 2)
        stages.set_postfix_str(name)
        stages.update(1)

    payload, vocab = generator.payload, generator.vocab
    train, val, held_out, described = _load_sets(payload, config, dataset)
    spellable = [e for e in held_out if all(t in vocab for t in e.tokens)]
    if len(spellable) < 2:
        raise TunesmithError(f"the evaluation set ({described}) has {len(spellable)} songs "
                             "the model's vocabulary can spell; need 2")
    real = [e.song for e in spellable]
    done("data", started)

    started = time.perf_counter()
    model_scores = evaluate_model(generator.model, spellable, vocab, generator.modes, generator.meters,
                                  generator.steps_per_quarter, generator.device)  # fmt: skip
    ngram = NGramModel(vocab, config.ngram.max_order).fit([vocab.ids(e.tokens) for e in train])
    if config.ngram.order:
        ngram.order = min(config.ngram.order, config.ngram.max_order)
    else:  # the order is chosen on the model's own validation split, as the model's early stopping was
        chosen_on = [e for e in val if all(t in vocab for t in e.tokens)] or spellable
        ngram.choose_order([vocab.ids(e.tokens) for e in chosen_on])
    scored = [ngram.log_probs(vocab.ids(e.tokens)) for e in spellable]
    ngram_scores = prediction_metrics([lp for lp, _ in scored], [t for _, t in scored], vocab)
    done("prediction", started)

    started = time.perf_counter()
    num = config.num or len(real)
    melodies = generate_melody_set(generator, real, num, config.bars, config.seed, config.progress, config.form)
    generated = [m.song for m in melodies]
    long_songs = []
    if config.dryout.num:
        mode, meter, _ = max(_allocate(real, len(real), generator.meters), key=lambda kind: kind[2])  # the commonest kind
        long_songs = [m.song for m in generator.generate(num=config.dryout.num, bars=config.dryout.bars, mode=mode,
                                                         meter=meter, seed=config.seed + 10_000, full_length=True)]  # fmt: skip
    done("generation", started)

    started = time.perf_counter()
    real_features, generated_features = feature_table(real), feature_table(generated)
    comparison = compare_sets(real_features, generated_features, config.compare)
    structure = {"real": structure_summary(real),
                 "generated": structure_summary(generated, [requested_form(m) for m in melodies])}  # fmt: skip
    done("statistics", started)

    started = time.perf_counter()
    index = OriginalityIndex(e.song for e in train)
    copies = {"generated": originality(index, generated, config.copy_bars),
              "real": originality(index, real, config.copy_bars)}  # fmt: skip
    done("originality", started)

    started = time.perf_counter()
    classified = discriminate(real_features, generated_features, replace(config.classifier, structure=True))
    classified_basic = discriminate(real_features, generated_features, replace(config.classifier, structure=False))
    done("classifier", started)

    started = time.perf_counter()
    dry = None
    if long_songs:
        # The reference is real songs of the kind generated: notes per bar depend on the meter.
        kind = [s for s in real if (s.mode, s.meter) == (long_songs[0].mode, long_songs[0].meter)]
        dry = dryout(long_songs, kind or real, config.dryout.bars, config.dryout.min_bars)
        dry.update(mode=long_songs[0].mode, meter=long_songs[0].meter)
    done("dry-out", started)
    stages.close()

    return {
        "model": str(model_path),
        "evaluation_set": described,
        "settings": _settings(config),
        "counts": {"train": len(train), "evaluated": len(spellable), "unspellable": len(held_out) - len(spellable),
                   "generated": len(generated), "dryout": len(long_songs)},  # fmt: skip
        "prediction": {"model": model_scores, "ngram": {**ngram_scores, "order": ngram.order}},
        "statistics": comparison,
        "features": {"real": real_features, "generated": generated_features},
        "originality": copies,
        "structure": structure,
        "classifier": classified,
        "classifier_basic": classified_basic,
        "dryout": dry,
        "seconds": timings,
        "generated_songs": generated,
        "examples": {"real": example_songs(real, 2, config.seed), "generated": example_songs(generated, 2, config.seed)},
    }


def _settings(config: EvaluateConfig) -> dict[str, Any]:
    settings = asdict(config)
    settings.pop("progress")
    return settings
