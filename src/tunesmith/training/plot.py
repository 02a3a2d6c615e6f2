"""``training.png``: loss and validation bits per epoch (matplotlib, Agg backend, no display)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_history(history: list[dict[str, Any]], path: str | Path) -> None:
    """Two panels: train/validation loss (nats per step), validation bits/step and pitch bits/note."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, (loss_ax, bits_ax) = plt.subplots(1, 2, figsize=(10, 4))
    loss_ax.plot(epochs, [h["train_loss"] for h in history], marker="o", label="train")
    loss_ax.plot(epochs, [h["val"]["loss"] for h in history], marker="o", label="validation")
    loss_ax.set(xlabel="epoch", ylabel="loss (nats/step)", title="loss")
    loss_ax.legend()
    bits_ax.plot(epochs, [h["val"]["bits_per_step"] for h in history], marker="o", label="bits/step")
    bits_ax.plot(epochs, [h["val"]["pitch_bits_per_note"] for h in history], marker="o", label="pitch bits/note")
    bits_ax.set(xlabel="epoch", ylabel="bits", title="validation")
    bits_ax.legend()
    for ax in (loss_ax, bits_ax):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    tmp = Path(path).with_name(f".{Path(path).name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)
