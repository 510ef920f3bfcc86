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


def parallel_coordinates(rows: list[dict[str, float]], axes_names: list[str], log_axes: set[str], metric: str,
                         dashed: list[bool], title: str, path: Path) -> Path:
    """One line per row across `axes_names` then `metric`, each axis scaled to its own range (a
    log10 range for `log_axes`), coloured by `metric`; `dashed` rows (trials stopped early) dashed."""
    names = [*axes_names, metric]
    values = np.array([[float(row[name]) for name in names] for row in rows], dtype=float)
    for column, name in enumerate(names):
        if name in log_axes:
            values[:, column] = np.log10(values[:, column])
    low, high = values.min(axis=0), values.max(axis=0)
    scaled = (values - low) / np.where(high > low, high - low, 1.0)
    figure, axes = plt.subplots(figsize=(max(6, 2 * len(names)), 4.5), dpi=100)
    colours = plt.get_cmap("viridis")(scaled[:, -1])
    for line, colour, stopped in zip(scaled, colours, dashed, strict=True):
        axes.plot(range(len(names)), line, color=colour, linestyle="--" if stopped else "-", marker="o", alpha=0.85)
    axes.set_xticks(range(len(names)), [f"log10 {n}" if n in log_axes else n for n in names], rotation=15)
    for column in range(len(names)):
        axes.annotate(f"{low[column]:.3g}", (column, 0), textcoords="offset points", xytext=(4, -12), fontsize=7)
        axes.annotate(f"{high[column]:.3g}", (column, 1), textcoords="offset points", xytext=(4, 4), fontsize=7)
    axes.set_yticks([])
    axes.set_title(f"{title} (dashed: stopped early)")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path
