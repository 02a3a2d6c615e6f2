"""An epoch's figures: ``training.png`` (loss and validation bits per epoch; matplotlib, Agg backend, no
display) and the summary line printed after each epoch."""

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


def epoch_summary(entry: dict[str, Any]) -> str:
    """The line (two for a form-aware model) ``tunesmith train`` prints after an epoch."""
    val = entry["val"]
    return (f"epoch {entry['epoch']}: train loss {entry['train_loss']:.4f}  val loss {val['loss']:.4f}  "
            f"bits/step {val['bits_per_step']:.3f}  pitch bits/note {val['pitch_bits_per_note']:.3f}  "
            f"onset acc {val['onset_accuracy']:.3f}  {entry['tokens_per_s']:,} tok/s  {entry['seconds']:.0f} s"
            + ("  *" if entry["improved"] else "") + _form_summary(val))  # fmt: skip


def _form_summary(val: dict[str, Any]) -> str:
    """A form-aware model's two-stage and form-hidden figures (bits/step, pitch bits/note), on a second line."""
    parts = []
    if "two_stage_bits_per_step" in val:
        parts.append(f"two-stage {val['two_stage_bits_per_step']:.3f}, {val['two_stage_pitch_bits_per_note']:.3f}")
    if "hidden_bits_per_step" in val:
        parts.append(f"form hidden {val['hidden_bits_per_step']:.3f}, {val['hidden_pitch_bits_per_note']:.3f}")
    return ("\n  " + "  ".join(parts)) if parts else ""
