"""The harmoniser: a hidden Markov model over chord functions, decoded with Viterbi.

States are chord functions ``(degree, quality)`` relative to the tonic, one set per mode.
Transitions are bigrams with a start/end state, kept apart for changes at a bar line and
changes inside a bar (a half-bar change is rarer), add-k smoothed. The melody of each span is
judged by a softmax regression from its features (pitch-class profile, the notes sounding at its
edges) to the chord; as in hybrid HMMs its posterior divided by the prior stands in for the
emission likelihood, scaled by ``beta`` against the transitions. Stored as plain JSON, never pickle.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tunesmith.errors import TunesmithError
from tunesmith.harmony.spans import FEATURES, PERS, Label, Passage, span_features

FORMAT = "tunesmith-harmony"
VERSION = 1


def default_harmony_path() -> Path:
    """The shipped harmoniser, ``models/harmony.json`` beside the shipped melody model."""
    from tunesmith.checkpoint import shipped_model_path

    return shipped_model_path("harmony.json")


@dataclass
class HarmonyConfig:
    """How the harmoniser is trained and judged."""

    data: str = ""  # Nottingham ABC folder; "" = ../shared/data/nottingham-abc from the project root
    cache_dir: str = ""  # "" = $TUNESMITH_CACHE or ~/.cache/tunesmith
    workers: int = 2  # parsing processes
    test_fraction: float = 0.2  # tunes held out for the figures (split by title)
    dev_fraction: float = 0.2  # training tunes set aside to choose beta and accent
    seed: int = 0
    min_count: int = 8  # a chord function needs this many training spans to become a state
    transition_k: float = 0.5  # add-k smoothing of the transition counts
    l2: float = 1e-3  # penalty on the emission model's weights
    betas: tuple[float, ...] = (0.5, 0.75, 1.0, 1.5, 2.0)  # melody-evidence weight candidates
    accents: tuple[float, ...] = (1.0, 1.5)  # on-beat note weight candidates (2.0 was never better)
    half_share: float = 0.3  # a meter defaults to half-bar chords when its tunes change mid-bar this often

    def validate(self) -> HarmonyConfig:
        if self.workers < 1:
            raise TunesmithError(f"--workers must be >= 1, got {self.workers!r}")
        for name in ("test_fraction", "dev_fraction"):
            if not 0 < getattr(self, name) < 1:
                raise TunesmithError(f"{name} must be between 0 and 1, got {getattr(self, name)!r}")
        if self.min_count < 1 or self.l2 < 0 or self.transition_k <= 0 or not self.betas or not self.accents:
            raise TunesmithError("harmoniser settings out of range: min_count >= 1, l2 >= 0, transition_k > 0, betas and accents given")
        return self


@dataclass
class Tables:
    """One mode's model for one span size (log probabilities where it says so)."""

    weights: np.ndarray  # [S, FEATURES + 1]: softmax regression from span features (+ bias) to chords
    log_prior: np.ndarray  # [S] how often each chord is the annotated one
    transition: np.ndarray  # [2, S + 1, S + 1] log: [0] at a bar line, [1] inside a bar; index S = start/end
    beta: float  # weight of the melody evidence against the transitions

    def scores(self, features: np.ndarray) -> np.ndarray:
        """``[T, S]`` scaled log-likelihood ratios log P(chord | span) − log P(chord)."""
        logits = np.concatenate([features, np.ones((len(features), 1))], axis=1) @ self.weights.T
        log_post = logits - _logsumexp(logits)
        return self.beta * (log_post - self.log_prior)


@dataclass
class HarmonyModel:
    """Chord states per mode and a Tables per (mode, span size)."""

    states: dict[str, list[Label]]
    tables: dict[str, dict[str, Tables]]
    accent: float
    default_per: dict[str, str] = field(default_factory=dict)  # meter → "bar" | "half"
    info: dict[str, Any] = field(default_factory=dict)

    def per_for(self, meter: str) -> str:
        """Span size for ``meter``: what its training tunes did; unseen meters by beat count."""
        if meter in self.default_per:
            return self.default_per[meter]
        return "half" if meter.split("/")[0] in ("2", "4", "6", "12") else "bar"

    def decode(self, passage: Passage, per: str, features: np.ndarray | None = None) -> list[Label]:
        """The most likely chord of each span (Viterbi); ``features`` precomputed by ``span_features``."""
        if passage.mode not in self.states:
            raise TunesmithError(f"the harmoniser knows modes {', '.join(self.states)}, not {passage.mode!r}")
        table, states = self.tables[passage.mode][per], self.states[passage.mode]
        if not passage.spans:
            return []
        if features is None:
            features = span_features(passage, self.accent)
        return [states[i] for i in viterbi(table.scores(features), table.transition, [s[2] for s in passage.spans])]

    def to_dict(self) -> dict[str, Any]:
        tables = {mode: {per: {"beta": t.beta, "weights": np.round(t.weights, 4).tolist(),
                               "log_prior": np.round(t.log_prior, 4).tolist(),
                               "transition": np.round(t.transition, 4).tolist()} for per, t in by_per.items()}
                  for mode, by_per in self.tables.items()}  # fmt: skip
        return {"format": FORMAT, "version": VERSION, "accent": self.accent, "default_per": self.default_per,
                "states": {m: [list(s) for s in st] for m, st in self.states.items()}, "tables": tables,
                "info": self.info}  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HarmonyModel:
        states = {m: [(int(d), str(q)) for d, q in st] for m, st in data["states"].items()}
        tables = {}
        for mode, by_per in data["tables"].items():
            tables[mode] = {}
            for per, t in by_per.items():
                weights, prior = np.array(t["weights"], float), np.array(t["log_prior"], float)
                transition, size = np.array(t["transition"], float), len(states[mode])
                if weights.shape != (size, FEATURES + 1) or prior.shape != (size,) or transition.shape != (2, size + 1, size + 1):
                    raise ValueError(f"{mode}/{per} tables do not match {size} states")
                tables[mode][per] = Tables(weights, prior, transition, float(t["beta"]))
        if set(tables) != set(states) or any(set(t) != set(PERS) for t in tables.values()):
            raise ValueError("tables missing for a mode or span size")
        return cls(states, tables, float(data["accent"]), dict(data.get("default_per", {})), dict(data.get("info", {})))

    def save(self, path: str | Path) -> Path:
        """Write the file whole or not at all (a temporary file renamed over ``path``)."""
        path = Path(path)
        partial = path.with_name(f".{path.name}.partial")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial.write_text(json.dumps(self.to_dict(), separators=(",", ":")) + "\n", encoding="utf-8")
            partial.replace(path)
        except OSError as exc:
            if partial.parent.is_dir():
                partial.unlink(missing_ok=True)
            raise TunesmithError(f"cannot save the harmoniser at {str(path)!r}: {exc.strerror or exc}") from None
        return path


def load_harmony(path: str | Path | None = None) -> HarmonyModel:
    """Load a harmoniser file (default: the shipped one); TunesmithError when it is not ours."""
    path = Path(path) if path is not None else default_harmony_path()
    if not path.is_file():
        raise TunesmithError(f"no harmoniser file at {str(path)!r}: run `tunesmith harmonize --train` or pass --model")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise TunesmithError(f"{str(path)!r} is not a tunesmith harmoniser (not JSON)") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise TunesmithError(f"{str(path)!r} is not a tunesmith harmoniser file")
    if data.get("version") != VERSION:
        raise TunesmithError(f"{str(path)!r} is harmoniser format {data.get('version')!r}; this tunesmith reads {VERSION}")
    try:
        return HarmonyModel.from_dict(data)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise TunesmithError(f"{str(path)!r} is a damaged harmoniser file ({type(exc).__name__}: {exc})") from None


def viterbi(scores: np.ndarray, transition: np.ndarray, bar_starts: list[bool]) -> list[int]:
    """Best state path for ``scores [T, S]`` (log emission) under ``transition [2, S+1, S+1]``.

    Step ``t`` uses the bar-line table when span ``t`` starts a bar, else the inside-bar table;
    the path starts from and ends in the start/end state ``S``.
    """
    steps, size = scores.shape
    best = transition[0, size, :size] + scores[0]
    back = np.zeros((steps, size), dtype=int)
    for t in range(1, steps):
        table = transition[0 if bar_starts[t] else 1, :size, :size]
        candidates = best[:, None] + table
        back[t] = candidates.argmax(axis=0)
        best = candidates.max(axis=0) + scores[t]
    best = best + transition[0, :size, size]
    path = [int(best.argmax())]
    for t in range(steps - 1, 0, -1):
        path.append(int(back[t, path[-1]]))
    return path[::-1]


def count_transitions(passages: list[Passage], states: list[Label], config: HarmonyConfig) -> np.ndarray:
    """``[2, S + 1, S + 1]`` log transition probabilities from annotated passages, add-k smoothed."""
    size = len(states)
    index = {s: i for i, s in enumerate(states)}
    transition = np.full((2, size + 1, size + 1), config.transition_k)
    transition[:, size, size] = 0.0  # no empty passages
    for passage in passages:
        previous: int | None = size
        for t, label in enumerate(passage.gold):
            state = index.get(fold(label, index)) if label is not None else None
            if state is None:
                previous = size if previous == size else None  # an unknown chord breaks the chain
                continue
            if previous is not None:
                transition[0 if passage.spans[t][2] or previous == size else 1, previous, state] += 1
            previous = state
        if previous is not None and previous != size:
            transition[0, previous, size] += 1
    with np.errstate(divide="ignore"):  # start → end stays impossible (a finite −1e9 keeps JSON plain)
        return np.maximum(np.log(transition / transition.sum(axis=2, keepdims=True)), -1e9)


def fit_emission(features: np.ndarray, targets: np.ndarray, size: int, l2: float) -> tuple[np.ndarray, np.ndarray]:
    """Softmax regression ``features [N, F] → targets [N]`` (L2-penalised, L-BFGS) and the log prior."""
    from scipy.optimize import minimize

    inputs = np.concatenate([features, np.ones((len(features), 1))], axis=1)
    onehot = np.zeros((len(targets), size))
    onehot[np.arange(len(targets)), targets] = 1.0
    shape = (size, inputs.shape[1])

    def loss(flat: np.ndarray) -> tuple[float, np.ndarray]:
        weights = flat.reshape(shape)
        logits = inputs @ weights.T
        log_post = logits - _logsumexp(logits)
        value = -(onehot * log_post).sum() / len(inputs) + l2 * (weights[:, :-1] ** 2).sum()
        grad = (np.exp(log_post) - onehot).T @ inputs / len(inputs)
        grad[:, :-1] += 2 * l2 * weights[:, :-1]
        return value, grad.ravel()

    with _one_blas_thread():  # small products: threads only contend (25x slower on a busy 2-core box)
        result = minimize(loss, np.zeros(shape).ravel(), jac=True, method="L-BFGS-B", options={"maxiter": 300})
    counts = np.bincount(targets, minlength=size) + 1.0
    return result.x.reshape(shape), np.log(counts / counts.sum())


def _one_blas_thread():
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # comes with scikit-learn; without it numpy keeps its own threads
        from contextlib import nullcontext

        return nullcontext()
    return threadpool_limits(limits=1)


def _logsumexp(logits: np.ndarray) -> np.ndarray:
    top = logits.max(axis=1, keepdims=True)
    return top + np.log(np.exp(logits - top).sum(axis=1, keepdims=True))


def fold(label: Label | None, known: dict[Label, int] | list[Label]) -> Label | None:
    """A label, or its plain triad when only that is a state (A7 → A, Bm7 → Bm)."""
    if label is None or label in known:
        return label
    triad = (label[0], {"7": "maj", "maj7": "maj", "min7": "min"}.get(label[1], label[1]))
    return triad if triad in known else label


def asdict_config(config: HarmonyConfig) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()}
