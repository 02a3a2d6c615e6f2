"""The checkpoint file: a typed :class:`Checkpoint`, saved atomically and loaded safely.

A checkpoint is a plain dict of str, int, float, bool, lists, dicts and tensors written with
``torch.save``. It is read with ``torch.load(weights_only=True)``: a file that holds anything
else (a pickled object, which could run code while loading) is refused for safety, never
unpickled. Every field is then checked, so a foreign, truncated or tampered file is a one-line
:class:`TunesmithError`. Version 2 files (plain data too) are converted on load.
"""

from __future__ import annotations

import os
import pickle
import re
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from tunesmith import __version__
from tunesmith.config import Config, ModelConfig
from tunesmith.encoding import HOLD, PAD
from tunesmith.errors import TunesmithError

FORMAT = "tunesmith-checkpoint"
VERSION = 3
# Version-2 top-level keys that are training or resume state; version 3 keeps them under ``extra``.
_V2_EXTRA = ("epoch", "optimizer", "scheduler", "rng", "history", "run", "training_model")


@dataclass
class Checkpoint:
    """A trained MelodyLSTM and everything needed to sample from, evaluate or resume it.

    ``extra`` holds the rest (resume state: ``epoch``, ``optimizer``, ``scheduler``, ``rng``,
    ``history``, ``run``, ``training_model``) and room for later additions; plain data only.
    """

    model_config: ModelConfig
    state_dict: dict[str, torch.Tensor]
    vocab: list[str]
    modes: list[str]
    meters: list[str]
    steps_per_quarter: int
    config: dict[str, Any] = field(default_factory=dict)  # the training Config.to_dict()
    metrics: dict[str, Any] = field(default_factory=dict)  # latest validation metrics and "best"
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_model(cls, model: Any, **fields: Any) -> Checkpoint:
        """A checkpoint of ``model`` (a MelodyLSTM, or one wrapped by DDP); ``fields`` are the rest."""
        raw = model.module if hasattr(model, "module") else model
        return cls(model_config=raw.config, state_dict=raw.state_dict(), **fields)

    def training_config(self) -> Config:
        """The Config the model was trained with (a TunesmithError when it no longer validates)."""
        return Config.from_dict(self.config).validate()

    def build_model(self, device: str | torch.device = "cpu") -> Any:
        """The MelodyLSTM with these weights, in eval mode on ``device``."""
        from tunesmith.model import MelodyLSTM

        model = MelodyLSTM(self.model_config, len(self.vocab), len(self.modes), len(self.meters),
                           pad_id=self.vocab.index(PAD), hold_id=self.vocab.index(HOLD))  # fmt: skip
        try:
            model.load_state_dict(self.state_dict)
        except RuntimeError as exc:
            first = str(exc).splitlines()[1].strip() if len(str(exc).splitlines()) > 1 else str(exc)
            raise TunesmithError(f"the checkpoint's weights do not fit its model settings ({first})") from None
        return model.to(device).eval()

    def to_dict(self) -> dict[str, Any]:
        """The plain dict that is saved (also the read-only view older code calls a payload)."""
        return {"format": FORMAT, "version": VERSION, "tunesmith_version": __version__,
                "model_config": asdict(self.model_config), "model": self.state_dict, "vocab": list(self.vocab),
                "modes": list(self.modes), "meters": list(self.meters),
                "steps_per_quarter": int(self.steps_per_quarter), "config": self.config, "metrics": self.metrics,
                "extra": self.extra}  # fmt: skip

    def without_resume_state(self) -> Checkpoint:
        """The same model without optimizer, scheduler, RNG and raw training weights (a shipped model)."""
        keep = {k: v for k, v in self.extra.items() if k not in ("optimizer", "scheduler", "rng", "training_model")}
        return Checkpoint(self.model_config, self.state_dict, self.vocab, self.modes, self.meters,
                          self.steps_per_quarter, self.config, self.metrics, keep)  # fmt: skip

    def save(self, path: str | Path) -> None:
        """Write atomically (a temp file in the same folder, then a rename); a failed write leaves
        no temp file behind and is a one-line TunesmithError naming the path."""
        path = Path(path)
        bad = [name for name, tensor in self.state_dict.items() if not bool(torch.isfinite(tensor).all())]
        if bad:
            raise TunesmithError(f"refusing to save {str(path)!r}: weight {bad[0]} is not finite (NaN or inf)")
        for key, value in (("config", self.config), ("metrics", self.metrics), ("extra", self.extra)):
            _check_plain(value, key, path)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save(self.to_dict(), tmp)
            os.replace(tmp, path)
        except (OSError, RuntimeError) as exc:  # torch's zip writer reports a full disk as RuntimeError
            try:
                tmp.unlink()
            except OSError:
                pass
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else _short(exc)
            raise TunesmithError(f"cannot write checkpoint {str(path)!r}: {why}") from None

    @classmethod
    def load(cls, path: str | Path, map_location: str | torch.device = "cpu") -> Checkpoint:
        """Read and check a checkpoint safely; anything unusable is a one-line TunesmithError."""
        path = Path(path)
        if not path.is_file():
            raise TunesmithError(f"no checkpoint at {str(path)!r}")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                data = torch.load(path, map_location=map_location, weights_only=True)
        except pickle.UnpicklingError as exc:
            found = re.search(r"GLOBAL (\S+)", str(exc))
            what = f" ({found.group(1)})" if found else ""
            raise TunesmithError(f"{str(path)!r} was refused for safety: it holds Python objects{what}, not just "
                                 "plain data and tensors, and loading it could run code") from None  # fmt: skip
        except Exception as exc:  # torch raises several types for files that are not checkpoints
            raise TunesmithError(f"{str(path)!r} is not a readable checkpoint ({_short(exc)})") from None
        return cls.from_dict(data, str(path))

    @classmethod
    def from_dict(cls, data: Any, where: str = "checkpoint") -> Checkpoint:
        """Validate a loaded dict (either version) and build the Checkpoint."""
        name = repr(where)
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise TunesmithError(f"{name} is not a tunesmith checkpoint")
        version = data.get("version")
        if version == 2:
            data = {**{k: v for k, v in data.items() if k not in _V2_EXTRA},
                    "extra": {k: data[k] for k in _V2_EXTRA if k in data}}  # fmt: skip
        elif version != VERSION:
            raise TunesmithError(f"{name} is checkpoint version {version!r} (tunesmith "
                                 f"{data.get('tunesmith_version')}); this tunesmith reads versions 2 and {VERSION}")  # fmt: skip

        def need(key: str, kind: type | tuple[type, ...], label: str) -> Any:
            value = data.get(key)
            if not isinstance(value, kind) or isinstance(value, bool) and kind is int:
                raise TunesmithError(f"{name} is damaged: {key} must be {label}, got {type(value).__name__}")
            return value

        try:
            model_config = Config.from_dict({"model": need("model_config", dict, "a table")}).model
            model_config.validate()
        except TunesmithError as exc:
            raise TunesmithError(f"{name} is damaged: {exc}") from None
        state = need("model", dict, "a table of tensors")
        for key, tensor in state.items():
            if not isinstance(key, str) or not isinstance(tensor, torch.Tensor):
                raise TunesmithError(f"{name} is damaged: weight {key!r} is not a tensor")
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                raise TunesmithError(f"{name} is damaged: weight {key} holds NaN or infinite values")
        lists = {}
        for key in ("vocab", "modes", "meters"):
            value = need(key, list, "a list of names")
            if not value or not all(isinstance(v, str) for v in value):
                raise TunesmithError(f"{name} is damaged: {key} must be a non-empty list of names")
            lists[key] = value
        if PAD not in lists["vocab"] or HOLD not in lists["vocab"]:
            raise TunesmithError(f"{name} is damaged: its vocabulary lacks {PAD} or {HOLD}")
        spq = need("steps_per_quarter", int, "an integer")
        if not 1 <= spq <= 48:
            raise TunesmithError(f"{name} is damaged: steps_per_quarter {spq} is not in 1..48")
        config = data.get("config", {})
        metrics = data.get("metrics", {})
        extra = data.get("extra", {})
        for key, value in (("config", config), ("metrics", metrics), ("extra", extra)):
            if not isinstance(value, dict):
                raise TunesmithError(f"{name} is damaged: {key} must be a table, got {type(value).__name__}")
        return cls(model_config, state, lists["vocab"], lists["modes"], lists["meters"], spq, config, metrics, extra)


_PLAIN = (str, int, float, bool, type(None), torch.Tensor)


def _check_plain(value: Any, where: str, path: Path) -> None:
    """Refuse to save anything ``Checkpoint.load`` would refuse to read: only plain data and tensors."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str | int):
                raise TunesmithError(f"cannot save {str(path)!r}: {where} has a key of type {type(key).__name__}")
            _check_plain(item, f"{where}.{key}", path)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_plain(item, f"{where}[{index}]", path)
    elif not isinstance(value, _PLAIN):
        raise TunesmithError(f"cannot save {str(path)!r}: {where} holds a {type(value).__name__}, not plain data")


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    return first if len(first) <= 120 else first[:117] + "..."



def shipped_model_path() -> Path:
    """The model tunesmith ships (``erk.pt``): package data of an installed tunesmith
    (``tunesmith/models/erk.pt``, put there by the build), else ``models/erk.pt`` of the source tree."""
    from importlib import resources

    installed = resources.files("tunesmith") / "models" / "erk.pt"
    if installed.is_file():
        return Path(str(installed))
    return Path(__file__).resolve().parents[2] / "models" / "erk.pt"
