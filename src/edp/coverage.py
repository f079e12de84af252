"""Maze state-coverage metric (docs/mazes.md §5) and its figure.

Coverage after an episode = visited bins / (G_x * G_y * A_wall / A_full), over every stored
observation of every episode so far, in chronological order. Bins come from the maze's bounding
box with width 0.05 (0.1 for the 10x10 mazes); coordinates are clamped to [0, 1 - 1e-4] after
normalisation, so leaked points outside the box land in the border bins, as in the reference.
The tracker is incremental so a run never needs to keep its whole replay to report coverage.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edp.envs.maze import enclosed_area, get_maze
from edp.figures import pyplot, save_figure

MAX_EPISODES = 2000  # the reference script reads at most the first 2000 episode files
_CLAMP = 1.0 - 1e-4


class CoverageTracker:
    """Visited-bin grid plus visit counts (for the density figure) of one maze run."""

    def __init__(self, maze_name: str, max_episodes: int | None = MAX_EPISODES):
        self.maze = get_maze(maze_name)
        x_min, x_max, y_min, y_max = self.maze.bounds
        width = self.maze.bin_width
        self.grid_shape = (int((x_max - x_min) / width), int((y_max - y_min) / width))
        full = (x_max - x_min) * (y_max - y_min)
        self.normaliser = self.grid_shape[0] * self.grid_shape[1] * enclosed_area(self.maze) / full
        self.counts = np.zeros(self.grid_shape, np.int64)
        self.curve: list[float] = []
        self.max_episodes = max_episodes

    def bins(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Bin indices of (..., 2) points, with the reference's float32 arithmetic and clamp."""
        x_min, x_max, y_min, y_max = self.maze.bounds
        p = np.asarray(points, np.float32).reshape(-1, 2)
        u = np.clip((p[:, 0] - np.float32(x_min)) / np.float32(x_max - x_min), 0, _CLAMP)
        v = np.clip((p[:, 1] - np.float32(y_min)) / np.float32(y_max - y_min), 0, _CLAMP)
        return (u * self.grid_shape[0]).astype(np.int64), (v * self.grid_shape[1]).astype(np.int64)

    def add_episodes(self, observations: np.ndarray) -> None:
        """Add episodes (E, steps, 2) in chronological order; one curve value per episode."""
        for episode in np.asarray(observations).reshape(-1, *np.shape(observations)[-2:]):
            if self.max_episodes is not None and len(self.curve) >= self.max_episodes:
                return
            np.add.at(self.counts, self.bins(episode), 1)
            self.curve.append(float(np.count_nonzero(self.counts)) / self.normaliser)

    @property
    def value(self) -> float:
        return self.curve[-1] if self.curve else 0.0

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"counts": self.counts, "curve": np.asarray(self.curve, np.float64)}

    def load_state_dict(self, data: dict[str, np.ndarray]) -> None:
        if data["counts"].shape != self.counts.shape:
            raise ValueError(f"coverage checkpoint grid {data['counts'].shape} does not match "
                             f"maze {self.maze.name} grid {self.counts.shape}")
        self.counts = data["counts"].astype(np.int64)
        self.curve = [float(x) for x in data["curve"]]


def state_coverage(maze_name: str, observations: np.ndarray,
                   max_episodes: int | None = MAX_EPISODES) -> np.ndarray:
    """Coverage curve (one value per episode) of observations (episodes, steps, 2)."""
    observations = np.asarray(observations)
    if observations.ndim != 3 or observations.shape[-1] != 2:
        raise ValueError(f"observations must have shape (episodes, steps, 2), "
                         f"got {observations.shape}")
    tracker = CoverageTracker(maze_name, max_episodes)
    tracker.add_episodes(observations)
    return np.asarray(tracker.curve)


def write_coverage(tracker: CoverageTracker, run_dir: Path, title: str) -> None:
    """coverage.json (curve and final value) and coverage.png in the run directory."""
    data = {"maze": tracker.maze.name, "final": tracker.value, "episodes": len(tracker.curve),
            "curve": tracker.curve}
    (run_dir / "coverage.json").write_text(json.dumps(data))
    plot_density(tracker, run_dir / "coverage.png", f"{title}\nstate coverage {tracker.value:.3f}")


def plot_reward_map(maze_name: str, reward_fn, path: Path, title: str,
                    resolution: int = 120) -> None:
    """Heat map of reward_fn((N, 2) points) -> (N,) over the maze's box; walls drawn, cells
    outside the maze greyed out."""
    from edp.envs.maze import draw_walls, inside_maze

    plt = pyplot()
    maze = get_maze(maze_name)
    x_min, x_max, y_min, y_max = maze.bounds
    step = max(x_max - x_min, y_max - y_min) / resolution
    xs = np.arange(x_min + step / 2, x_max, step)
    ys = np.arange(y_min + step / 2, y_max, step)
    points = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2).astype(np.float32)
    values = np.asarray(reward_fn(points), np.float64).reshape(len(ys), len(xs))
    values = np.ma.masked_where(~inside_maze(maze, points).reshape(values.shape), values)
    fig, ax = plt.subplots(figsize=(6, 6 * (y_max - y_min) / (x_max - x_min) + 0.6))
    ax.set_facecolor("0.85")
    image = ax.imshow(values, origin="lower", extent=(x_min, x_max, y_min, y_max),
                      cmap="magma", interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="intrinsic reward")
    draw_walls(ax, maze)
    ax.set_title(title)
    save_figure(plt, fig, path, dpi=120)


def plot_density(tracker: CoverageTracker, path: Path, title: str) -> None:
    """Walls over a log-scaled visit-density map; unvisited bins stay white."""
    plot_densities([(title, tracker)], path)


def plot_densities(panels: list[tuple[str, CoverageTracker]], path: Path,
                   title: str | None = None, max_cols: int = 4) -> None:
    """Visit densities side by side (one panel per (title, tracker)) on one colour scale,
    `max_cols` panels per row (a dozen agents stay readable)."""
    from matplotlib.colors import LogNorm

    from edp.envs.maze import draw_walls

    plt = pyplot()
    x_min, x_max, y_min, y_max = panels[0][1].maze.bounds
    vmax = max(2, *(int(t.counts.max()) for _, t in panels))
    height = 6 * (y_max - y_min) / (x_max - x_min) + 0.6
    # Constrained layout sizes the equal-aspect panels, colour bar and title together.
    cols = min(max_cols, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6 * cols, height * rows), squeeze=False,
                             layout="constrained")
    image = None
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    for ax, (panel_title, tracker) in zip(axes.flat, panels, strict=False):
        counts = np.ma.masked_equal(tracker.counts.T, 0)
        if counts.count():
            image = ax.imshow(counts, origin="lower", extent=(x_min, x_max, y_min, y_max),
                              cmap="viridis", norm=LogNorm(vmin=1, vmax=vmax),
                              interpolation="nearest")
        draw_walls(ax, tracker.maze)
        ax.set_title(panel_title)
    if image is not None:
        fig.colorbar(image, ax=list(axes.flat), shrink=0.9, aspect=20, pad=0.01,
                     label="visits per bin")
    if title:
        fig.suptitle(title)
    save_figure(plt, fig, path, dpi=120, bbox_inches="tight")
