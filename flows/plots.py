"""PNG figures logged next to the evaluation metrics (matplotlib stays out of cl_core)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: no display on workers or CI
import matplotlib.pyplot as plt
import numpy as np


def embedding_map(points: np.ndarray, labels: np.ndarray | None, title: str, path: Path) -> Path:
    """Scatter (N, 2) points coloured by label."""
    figure, axes = plt.subplots(figsize=(6, 6), dpi=100)
    colours = labels if labels is not None else "tab:blue"
    scatter = axes.scatter(points[:, 0], points[:, 1], c=colours, cmap="tab10", s=4, alpha=0.7)
    if labels is not None:
        figure.colorbar(scatter, ax=axes, label="label")
    axes.set_title(title)
    axes.set_xticks([])
    axes.set_yticks([])
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path


def loss_curve(history: list[tuple[int, float]], title: str, path: Path) -> Path:
    figure, axes = plt.subplots(figsize=(6, 4), dpi=100)
    if history:
        steps, values = zip(*history, strict=True)
        axes.plot(steps, values, marker="o")
    axes.set_xlabel("epoch")
    axes.set_ylabel("training loss")
    axes.set_title(title)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path
