"""Pure logit transforms and choices: temperature, greedy, top-k, top-p, mixed argmax/sample.

Every function takes logits ``[B, V]`` (one row per melody) and returns a new tensor; none keeps
state. Forbidden tokens carry ``-inf`` and stay forbidden through every transform.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from tunesmith.errors import TunesmithError

STEP_SCHEMES = ("sample", "greedy", "mixed", "top-k", "top-p")  # beam search lives in decode.py


class SamplingError(TunesmithError):
    """A row's scores hold NaN or +inf, or forbid every token: nothing can be chosen safely."""


class RowRandom:
    """One seeded random stream per row, so each row's draws do not depend on the other rows.

    Accepted wherever a ``torch.Generator`` is: a batch of independent requests decoded as one
    pass gets one stream per request row, and a row seeded with ``s`` draws exactly the numbers a
    one-row run with ``torch.Generator().manual_seed(s)`` draws (same order, same values).
    """

    def __init__(self, seeds: list[int], device: torch.device | str = "cpu"):
        self.seeds = list(seeds)
        self.streams = [torch.Generator(device=device).manual_seed(seed) for seed in self.seeds]

    def __len__(self) -> int:
        return len(self.streams)

    def rand(self, shape: tuple[int, ...], device: torch.device | str) -> torch.Tensor:
        """Uniform [0, 1) numbers of ``shape``; row ``i`` (``shape[0]`` rows) drawn from stream ``i``."""
        if shape[0] != len(self.streams):
            raise TunesmithError(f"{shape[0]} rows drawn from {len(self.streams)} random streams")
        return torch.stack([torch.rand(shape[1:], generator=g, device=device) for g in self.streams])


class DrawnAhead:
    """A CPU ``torch.Generator`` read in chunks: :meth:`take` hands out its uniform [0, 1) numbers
    in order, drawn ``chunk`` at a time (one draw per chunk instead of one per step), and
    :meth:`settle` leaves the generator exactly where drawing only the numbers taken would have.

    A CPU generator draws float32 uniforms one 32-bit Mersenne Twister output each, serially, so
    ``n`` numbers drawn at once are the ``n`` numbers drawn in any pieces
    (``tests/test_sampling.py`` checks it); other devices' generators are not wrapped."""

    def __init__(self, generator: torch.Generator, chunk: int = 512):
        self.generator, self.chunk = generator, chunk
        self.buffer, self.at, self.state = np.empty(0, np.float32), 0, None  # state: before the buffer's draw

    def take(self, count: int) -> np.ndarray:
        """The next ``count`` numbers of the stream."""
        if self.at + count > self.buffer.shape[0]:
            self.settle()
            self.state = self.generator.get_state()
            self.buffer, self.at = torch.rand(max(count, self.chunk), generator=self.generator).numpy(), 0
        self.at += count
        return self.buffer[self.at - count : self.at]

    def settle(self) -> None:
        """Put the generator back where it stands after the numbers taken (none drawn ahead)."""
        if self.state is not None and self.at < self.buffer.shape[0]:
            self.generator.set_state(self.state)
            torch.rand(self.at, generator=self.generator)
        self.buffer, self.at, self.state = self.buffer[:0], 0, None


def ahead(generator):
    """``generator`` as a :class:`DrawnAhead` where that gives the same numbers (a CPU
    ``torch.Generator``), else unchanged."""
    if isinstance(generator, torch.Generator) and generator.device.type == "cpu":
        return DrawnAhead(generator)
    return generator


class JoinedRandom:
    """The streams of several requests decoded as one pass: ``parts`` are ``(stream, rows)``, each
    stream a ``torch.Generator`` (its rows draw together, as in a run of that request alone), a
    :class:`DrawnAhead` or a :class:`RowRandom`. A draw of ``shape`` takes, in order, ``rows``
    rows from each part."""

    def __init__(self, parts: list[tuple[torch.Generator | DrawnAhead | RowRandom, int]]):
        self.parts = list(parts)
        self.rows = sum(rows for _, rows in self.parts)
        self.ahead = all(isinstance(stream, DrawnAhead) for stream, _ in self.parts)

    def __len__(self) -> int:
        return self.rows

    def rand(self, shape: tuple[int, ...], device: torch.device | str) -> torch.Tensor:
        """Uniform [0, 1) numbers of ``shape``; each part's rows from its own stream."""
        if shape[0] != self.rows:
            raise TunesmithError(f"{shape[0]} rows drawn from streams of {self.rows} rows")
        rest = tuple(shape[1:])
        if self.ahead:
            each = math.prod(rest)
            drawn = np.concatenate([stream.take(rows * each) for stream, rows in self.parts])
            return torch.from_numpy(drawn.reshape(shape)).to(device)
        return torch.cat([uniform((rows, *rest), stream, device) for stream, rows in self.parts])


def uniform(shape: tuple[int, ...], generator, device) -> torch.Tensor:
    """Uniform [0, 1) numbers of ``shape`` from one generator, or per row (per request) from a
    :class:`RowRandom` (:class:`JoinedRandom`)."""
    if isinstance(generator, RowRandom | JoinedRandom):
        return generator.rand(tuple(shape), device)
    if isinstance(generator, DrawnAhead):
        return torch.from_numpy(generator.take(math.prod(shape)).reshape(shape)).to(device)
    return torch.rand(shape, generator=generator, device=device)


def host_uniform(rows: int, generator) -> np.ndarray:
    """:func:`uniform` of shape ``[rows, 1]`` on the CPU as a NumPy array (the same numbers),
    without a tensor in between where the stream is drawn ahead."""
    if isinstance(generator, DrawnAhead):
        return generator.take(rows).reshape(rows, 1)
    return uniform((rows, 1), generator, "cpu").numpy()


def apply_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Divide logits by a temperature.

    Parameters
    ----------
    logits : torch.Tensor
        Scores ``[B, V]``.
    temperature : float
        > 0; below 1 sharpens the distribution, above 1 flattens it.

    Returns
    -------
    torch.Tensor
        ``logits / temperature`` (``-inf`` stays ``-inf``).
    """
    if temperature <= 0:
        raise TunesmithError(f"temperature must be > 0 for sampling, got {temperature!r}")
    return logits if temperature == 1.0 else logits / temperature


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the ``k`` highest-scoring tokens of each row, forbid the rest.

    Parameters
    ----------
    logits : torch.Tensor
        Scores ``[B, V]``.
    k : int
        Tokens kept per row (>= 1); ties at the k-th score are all kept.

    Returns
    -------
    torch.Tensor
        Logits with every token below the k-th best set to ``-inf``.
    """
    if k < 1:
        raise TunesmithError(f"top-k must be >= 1, got {k!r}")
    if k >= logits.shape[-1]:
        return logits
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filter: keep the smallest set of best tokens whose probability reaches ``p``.

    Parameters
    ----------
    logits : torch.Tensor
        Scores ``[B, V]``.
    p : float
        Probability mass to keep, in (0, 1]; the single best token is always kept.

    Returns
    -------
    torch.Tensor
        Logits with the tokens outside the nucleus set to ``-inf``.
    """
    if not 0.0 < p <= 1.0:
        raise TunesmithError(f"top-p must be in (0, 1], got {p!r}")
    if p == 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    cumulative = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
    # A token is dropped when the tokens before it already reach p (so the best one always stays).
    drop_sorted = (cumulative - torch.softmax(sorted_logits, dim=-1)) >= p
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def greedy(logits: torch.Tensor) -> torch.Tensor:
    """The best token of each row.

    Parameters
    ----------
    logits : torch.Tensor
        Scores ``[B, V]``.

    Returns
    -------
    torch.Tensor
        Token ids ``[B]`` (``argmax``; the lowest id on a tie).

    Raises
    ------
    SamplingError
        When a row's best score is NaN, +inf or -inf (nothing allowed).
    """
    best, chosen = logits.max(dim=-1)
    if not bool(torch.isfinite(best).all()):
        raise SamplingError("greedy choice from scores that are NaN, infinite or all forbidden")
    return chosen


def sample(logits: torch.Tensor, generator: torch.Generator | RowRandom | None = None) -> torch.Tensor:
    """Draw one token per row from ``softmax(logits)``.

    Parameters
    ----------
    logits : torch.Tensor
        Scores ``[B, V]``; at least one finite entry per row.
    generator : torch.Generator or RowRandom, optional
        Source of randomness (seeded for reproducible runs; a RowRandom draws per row).

    Returns
    -------
    torch.Tensor
        Token ids ``[B]``; a ``-inf`` token is never drawn.

    Raises
    ------
    SamplingError
        When a row holds NaN or +inf, or forbids every token (its probabilities are then NaN).
    """
    # inverse-CDF draw: one uniform number per row (torch.multinomial draws one per token)
    if logits.is_cpu and not logits.requires_grad:  # rows of a few dozen entries: drawn in NumPy
        return torch.from_numpy(_host_sample(logits.float().numpy(), generator))
    cdf = torch.softmax(logits.float(), dim=-1).cumsum_(dim=-1)
    if bool(torch.isnan(cdf[:, -1]).any()):  # NaN or +inf anywhere in a row, or all -inf, makes it NaN
        raise SamplingError("sampling from scores that are NaN, infinite or all forbidden")
    u = uniform((cdf.shape[0], 1), generator, cdf.device) * cdf[:, -1:]
    # the first token whose CDF exceeds u: a zero-probability token never does, its CDF equals the one before
    return torch.searchsorted(cdf, u, right=True)[:, 0].clamp_(max=cdf.shape[1] - 1)


def _host_sample(scores: np.ndarray, generator) -> np.ndarray:
    """:func:`sample` on the CPU in NumPy: the same inverse-CDF draw (each row on its own, so a row
    draws alike in any batch), over ``exp(scores - max)`` left unnormalised (u scaled by the total)."""
    top = np.maximum.reduce(scores, axis=1, keepdims=True)
    if not math.isfinite(np.add.reduce(top[:, 0])):  # NaN or +inf in a row (NaN wins max), or all -inf
        raise SamplingError("sampling from scores that are NaN, infinite or all forbidden")
    cdf = np.exp(scores - top)  # the best token 1, a forbidden one 0
    np.add.accumulate(cdf, axis=1, out=cdf)
    u = host_uniform(cdf.shape[0], generator) * cdf[:, -1:]  # float32 times float32
    above = cdf > u  # the first CDF entry above u, as searchsorted "right" (the last one at most)
    above[:, -1] = True
    return above.argmax(1)


def mixed(logits: torch.Tensor, p: float, generator: torch.Generator | RowRandom | None = None) -> torch.Tensor:
    """The original report's scheme: argmax with probability ``p``, a softmax draw otherwise.

    Parameters
    ----------
    logits : torch.Tensor
        Scores ``[B, V]``.
    p : float
        Probability in [0, 1] of taking the best token (1 = greedy, 0 = plain sampling).
    generator : torch.Generator or RowRandom, optional
        Source of randomness for both the coin and the draw.

    Returns
    -------
    torch.Tensor
        Token ids ``[B]``.
    """
    if not 0.0 <= p <= 1.0:
        raise TunesmithError(f"mixed-p must be in [0, 1], got {p!r}")
    coin = uniform((logits.shape[0],), generator, logits.device) < p
    return torch.where(coin, logits.argmax(dim=-1), sample(logits, generator))  # sample() checks the scores


def choose(logits: torch.Tensor, scheme: str, temperature: float = 1.0, top_k: int = 8, top_p: float = 0.9,
           mixed_p: float = 0.5, generator: torch.Generator | RowRandom | None = None) -> torch.Tensor:  # fmt: skip
    """Pick the next token of each row with one of the per-step schemes (beam search lives elsewhere).

    Parameters
    ----------
    logits : torch.Tensor
        Masked scores ``[B, V]``.
    scheme : str
        ``sample``, ``greedy``, ``mixed``, ``top-k`` or ``top-p``.
    temperature, top_k, top_p, mixed_p : float, int, float, float
        The scheme's settings (temperature applies to every scheme except ``greedy``).
    generator : torch.Generator or RowRandom, optional
        Source of randomness.

    Returns
    -------
    torch.Tensor
        Token ids ``[B]``.
    """
    if scheme == "greedy":
        return greedy(logits)
    logits = apply_temperature(logits, temperature)
    if scheme == "sample":
        return sample(logits, generator)
    if scheme == "mixed":
        return mixed(logits, mixed_p, generator)
    if scheme == "top-k":
        return sample(top_k_filter(logits, top_k), generator)
    if scheme == "top-p":
        return sample(top_p_filter(logits, top_p), generator)
    raise TunesmithError(f"unknown sampling scheme {scheme!r}; known: {', '.join(STEP_SCHEMES)}")
