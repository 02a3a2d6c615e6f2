"""Configuration: one dataclass per stage, TOML presets, ``--set a.b=v`` overrides.

Every field has a comment with its unit or typical value. ``validate()`` raises
:class:`TunesmithError` with a message quoting the bad value.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import tomllib
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from tunesmith.errors import TunesmithError

# The original project's accepted note lengths, in quarter notes.
DEFAULT_DURATIONS = [0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0]
MAX_SEED = 2**32 - 1  # seeds are combined with epoch numbers and ranks; torch takes < 2**64
MAX_THREADS = 1024


@dataclass
class CorpusConfig:
    """Where melodies come from and how they are filtered and split."""

    sources: list[str] = field(default_factory=lambda: ["essen/erk"])  # files, folders, bundled names
    train_sources: list[str] = field(default_factory=list)  # more songs for training only; those of a validation title or melody are left out
    accepted_durations: list[float] = field(default_factory=lambda: list(DEFAULT_DURATIONS))  # quarters
    val_fraction: float = 0.1  # share of tune-title groups held out for validation
    split_seed: int = 0  # changes which title groups land in validation
    workers: int = 0  # parsing processes; 0 = one per core
    cache_dir: str = ""  # "" = $TUNESMITH_CACHE or ~/.cache/tunesmith

    def validate(self) -> None:
        check_fields(self, "corpus")
        if not self.sources:
            raise TunesmithError("corpus.sources is empty: name at least one file, folder or bundled corpus")
        if not self.accepted_durations or any(d <= 0 for d in self.accepted_durations):
            raise TunesmithError(f"corpus.accepted_durations must be positive quarter lengths, got {self.accepted_durations!r}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise TunesmithError(f"corpus.val_fraction must be in [0, 1), got {self.val_fraction!r}")
        if not 0 <= self.workers <= MAX_THREADS:
            raise TunesmithError(f"corpus.workers must be in 0..{MAX_THREADS}, got {self.workers!r}")
        if not 0 <= self.split_seed <= MAX_SEED:
            raise TunesmithError(f"corpus.split_seed must be in 0..{MAX_SEED}, got {self.split_seed!r}")


@dataclass
class EncodingConfig:
    """How a melody becomes tokens."""

    steps_per_quarter: int = 4  # time steps per quarter note; 4 = 16th-note grid

    def validate(self) -> None:
        check_fields(self, "encoding")
        if not 1 <= self.steps_per_quarter <= 48:
            raise TunesmithError(f"encoding.steps_per_quarter must be in 1..48, got {self.steps_per_quarter!r}")


@dataclass
class ModelConfig:
    """Shape of the MelodyLSTM."""

    embedding: int = 64  # token embedding width
    position_embedding: int = 16  # width of the step-within-bar embedding
    condition_embedding: int = 8  # width of each of the mode and meter embeddings
    hidden: int = 256  # LSTM units per layer
    layers: int = 2  # stacked LSTM layers
    dropout: float = 0.3  # between layers and before the output layer
    input_dropout: float = 0.0  # variational dropout of the LSTM input vector, one mask per song (training only)
    weight_drop: float = 0.0  # DropConnect on the recurrent (hidden-to-hidden) weights, one mask per batch (training only)
    max_position: int = 48  # steps within a bar are clipped to this (48 = a 3/1 bar of 16ths)
    sounding_embedding: int = 32  # width of the embedding of the pitch (or rest) still sounding
    since_embedding: int = 8  # width of the embedding of steps since that onset (clipped at 31)
    lookback: list[int] = field(default_factory=lambda: [1, 2, 4])  # bars back whose token at this position is an input
    lookback_embedding: int = 24  # width of each lookback token's embedding
    lookback_sounding_embedding: int = 16  # width of each lookback's sounding-pitch embedding
    form_inputs: bool = False  # read the song's form per step (tunesmith.form.inputs): phrase ends, restatements
    form_restatement: bool = True  # with form_inputs: also the phrase's role and restated token (False = phrase positions only)
    copy_logits: bool = False  # a learned bonus per step on the logits of the lookback tokens and the restated token

    def validate(self) -> None:
        check_fields(self, "model")
        for name in ("embedding", "position_embedding", "condition_embedding", "hidden", "layers", "max_position",
                     "sounding_embedding", "since_embedding", "lookback_embedding", "lookback_sounding_embedding"):  # fmt: skip
            value = getattr(self, name)
            if value < 1:
                raise TunesmithError(f"model.{name} must be >= 1, got {value!r}")
        if any(lag < 1 or lag > 16 for lag in self.lookback) or len(set(self.lookback)) != len(self.lookback):
            raise TunesmithError(f"model.lookback must be distinct bar counts in 1..16, got {self.lookback!r}")
        for name in ("dropout", "input_dropout", "weight_drop"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise TunesmithError(f"model.{name} must be in [0, 1), got {getattr(self, name)!r}")


@dataclass
class TrainConfig:
    """The training loop."""

    epochs: int = 30  # upper bound; early stopping usually ends sooner
    batch_size: int = 32  # songs (or chunks) per batch
    chunk_steps: int = 256  # longer songs are cut into chunks of this many steps
    lr: float = 1e-3  # Adam learning rate
    weight_decay: float = 0.0  # Adam L2 penalty (with decoupled_decay: AdamW's per-step shrink, times lr)
    decoupled_decay: bool = False  # AdamW: weight_decay shrinks the weights directly instead of adding to the gradient
    grad_clip: float = 1.0  # max global gradient norm
    beta2: float = 0.999  # Adam's second-moment decay rate (a shorter memory adapts faster in a short run)
    lr_factor: float = 0.5  # multiply lr by this when validation stalls
    lr_patience: int = 2  # epochs without improvement before annealing
    early_stop: int = 5  # epochs without improvement before stopping; 0 = never
    max_minutes: float = 0.0  # wall-clock budget; 0 = none
    seed: int = 1234  # torch, numpy and python random seed
    device: str = "auto"  # auto | cpu | cuda | mps
    threads: int = 0  # torch CPU threads; 0 = torch's default
    unknown_share: float = 0.1  # share of training songs whose mode/meter are shown as <unk>
    form_unknown_share: float = 0.1  # share of training songs whose form inputs are hidden (form-aware models)
    average: float = 0.0  # per-step decay of the weight average that is validated and saved; 0 = off
    focus_epochs: int = 0  # the last N epochs train on corpus.sources' songs alone (without corpus.train_sources)
    keep_memory: bool = False  # CPU, glibc: malloc keeps each step's memory until the epoch ends (10-15% faster epochs, a higher peak: training.process)
    out_dir: str = "runs"  # parent folder of run folders

    def validate(self) -> None:
        check_fields(self, "train")
        for name in ("epochs", "batch_size", "chunk_steps"):
            if getattr(self, name) < 1:
                raise TunesmithError(f"train.{name} must be >= 1, got {getattr(self, name)!r}")
        if not 0.0 < self.lr <= 1.0:
            raise TunesmithError(f"train.lr must be in (0, 1], got {self.lr!r}")
        if not 0.0 <= self.weight_decay <= 1.0:
            raise TunesmithError(f"train.weight_decay must be in [0, 1], got {self.weight_decay!r}")
        if not 0.0 <= self.beta2 < 1.0:
            raise TunesmithError(f"train.beta2 must be in [0, 1), got {self.beta2!r}")
        if not 0.0 < self.lr_factor < 1.0:
            raise TunesmithError(f"train.lr_factor must be in (0, 1), got {self.lr_factor!r}")
        if not 0.0 <= self.average < 1.0:
            raise TunesmithError(f"train.average must be in [0, 1), got {self.average!r}")
        if not 0.0 <= self.unknown_share < 1.0:
            raise TunesmithError(f"train.unknown_share must be in [0, 1), got {self.unknown_share!r}")
        if not 0.0 <= self.form_unknown_share < 1.0:
            raise TunesmithError(f"train.form_unknown_share must be in [0, 1), got {self.form_unknown_share!r}")
        for name in ("grad_clip", "max_minutes", "threads", "lr_patience", "early_stop", "focus_epochs"):
            if getattr(self, name) < 0:
                raise TunesmithError(f"train.{name} must be >= 0, got {getattr(self, name)!r}")
        if not 0 <= self.seed <= MAX_SEED:
            raise TunesmithError(f"train.seed must be in 0..{MAX_SEED}, got {self.seed!r}")
        if self.threads > MAX_THREADS:
            raise TunesmithError(f"train.threads must be <= {MAX_THREADS}, got {self.threads!r}")
        if self.device not in ("auto", "cpu", "cuda", "mps"):
            raise TunesmithError(f"train.device must be auto, cpu, cuda or mps, got {self.device!r}")


@dataclass
class Config:
    """Everything a run needs, one section per stage."""

    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    encoding: EncodingConfig = field(default_factory=EncodingConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def validate(self) -> Config:
        for section in dataclasses.fields(self):
            getattr(self, section.name).validate()
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Config:
        return _build(cls, data, "")


# ---------------------------------------------------------------------------------------------
# Building dataclasses from plain data, with type checks that quote the bad value.


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    origin = typing.get_origin(annotation)
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, dict):
            raise TunesmithError(f"{where} must be a table, got {value!r}")
        return _build(annotation, value, where + ".")
    if origin is list:
        (item,) = typing.get_args(annotation)
        if isinstance(value, str | int | float):
            value = [value]
        if not isinstance(value, list):
            raise TunesmithError(f"{where} must be a list, got {value!r}")
        return [_coerce(v, item, where) for v in value]
    if origin in (typing.Union, types.UnionType):
        errors = []
        for option in typing.get_args(annotation):
            if option is type(None) and value is None:
                return None
            try:
                return _coerce(value, option, where)
            except TunesmithError as exc:
                errors.append(str(exc))
        raise TunesmithError(errors[0])
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise TunesmithError(f"{where} must be true or false, got {value!r}")
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise TunesmithError(f"{where} must be an integer, got {value!r}")
    if annotation is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:  # an int too large for a float
                number = math.inf
            if not math.isfinite(number):
                raise TunesmithError(f"{where} must be a finite number, got {value!r}")
            return number
        raise TunesmithError(f"{where} must be a number, got {value!r}")
    if annotation is str:
        if isinstance(value, str):
            return value
        raise TunesmithError(f"{where} must be a string, got {value!r}")
    return value


def check_fields(obj: Any, section: str) -> None:
    """Check (and normalise, e.g. int → float) every field of a config dataclass against its type.

    The rule every ``validate()`` starts with, so a config built in Python, from TOML, from
    ``--set`` or from a web form is held to the same types: a float is a finite number (never
    NaN or infinite), an int an integer, a bool a bool. Nested dataclass fields are left to
    their own ``validate()``.
    """
    hints = typing.get_type_hints(type(obj))
    for item in dataclasses.fields(obj):
        annotation = hints[item.name]
        if dataclasses.is_dataclass(annotation):
            continue
        value = getattr(obj, item.name)
        setattr(obj, item.name, _coerce(value, annotation, f"{section}.{item.name}"))


def _build(cls: type, data: dict[str, Any], prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise TunesmithError(f"unknown setting {prefix}{unknown[0]!s}; known: {', '.join(sorted(names))}")
    kwargs = {k: _coerce(v, hints[k], prefix + k) for k, v in data.items()}
    return cls(**kwargs)


def _parse_value(text: str) -> Any:
    """Read an override value as TOML (numbers, booleans, lists, quoted strings); else a bare string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(config: Config, overrides: list[str]) -> Config:
    """Apply ``section.key=value`` strings (``model.hidden=512``) and re-validate."""
    data = config.to_dict()
    for item in overrides:
        key, sep, text = item.partition("=")
        parts = key.strip().split(".")
        if not sep or len(parts) != 2 or not all(parts):
            raise TunesmithError(f"override {item!r} must look like section.key=value (e.g. model.hidden=512)")
        section, name = parts
        if section not in data:
            raise TunesmithError(f"unknown section {section!r} in override {item!r}; known: {', '.join(data)}")
        if name not in data[section]:
            known = ", ".join(data[section])
            raise TunesmithError(f"unknown setting {key!r} in override {item!r}; known in {section}: {known}")
        data[section][name] = _parse_value(text.strip())
    return Config.from_dict(data).validate()


def preset_names() -> list[str]:
    """Names of the bundled presets (``tiny``, ``erk``, ``large``…)."""
    folder = resources.files("tunesmith") / "presets"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def load_preset(name_or_path: str) -> Config:
    """A bundled preset by name, or a TOML file by path; missing sections keep their defaults."""
    path = Path(name_or_path)
    if path.suffix == ".toml" and path.is_file():
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
            raise TunesmithError(f"cannot read preset {name_or_path!r}: {reason}") from None
    else:
        if name_or_path not in preset_names():
            raise TunesmithError(f"unknown preset {name_or_path!r}; known: {', '.join(preset_names())}")
        text = (resources.files("tunesmith") / "presets" / f"{name_or_path}.toml").read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TunesmithError(f"preset {name_or_path!r} is not valid TOML: {exc}") from None
    return Config.from_dict(data).validate()


def to_toml(config: Config) -> str:
    """Write a Config as TOML (only the value types configs use: str, int, float, bool, lists)."""

    def fmt(value: Any) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, str):
            return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(value, list):
            return "[" + ", ".join(fmt(v) for v in value) + "]"
        return repr(value)

    lines = []
    for section, values in config.to_dict().items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {fmt(v)}" for k, v in values.items()]
        lines.append("")
    return "\n".join(lines)


def add_config_arguments(parser: argparse.ArgumentParser, default_preset: str | None = None) -> None:
    """``--preset``, ``--corpus`` and ``--set``: the options every command that builds a Config shares."""
    default = f"; default {default_preset}" if default_preset else "; default: built-in defaults"
    parser.add_argument("--preset", default=default_preset,
                        help=f"preset name ({', '.join(preset_names())}) or TOML file{default}")  # fmt: skip
    parser.add_argument("--corpus", action="append", metavar="SOURCE",
                        help="file, folder or bundled name (repeatable; default: the preset's, else essen/erk); "
                             "replaces the preset's sources and its training-only ones")  # fmt: skip
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override a setting, e.g. model.hidden=512 or corpus.val_fraction=0.2")  # fmt: skip


def config_from_args(args: argparse.Namespace) -> Config:
    """The Config those options mean: the preset, then ``--corpus``, then each ``--set``."""
    config = load_preset(args.preset) if args.preset else Config()
    if args.corpus:  # the preset's training-only songs go with its sources
        config.corpus.sources, config.corpus.train_sources = list(args.corpus), []
    return apply_overrides(config, list(args.set))
