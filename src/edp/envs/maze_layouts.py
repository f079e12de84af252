"""Wall data of the point mazes, as merged wall runs (docs/mazes.md §3).

Storing runs instead of the upstream segment recipe keeps each maze a few readable lines that
can be checked against a drawing of the maze; `unit_walls` expands them to the unit walls the
dynamics work with. Maze cells are not stored: they are whatever the start cell reaches.
"""

from __future__ import annotations

from dataclasses import dataclass

Cell = tuple[int, int]
Run = tuple[float, float]
Wall = tuple[Run, Run]  # ((x_lo, x_hi), (y_lo, y_hi)); one interval is a single point


@dataclass(frozen=True)
class Layout:
    """One maze: wall runs on half-integer grid lines, plus its start and goal cells."""

    horizontal: dict[float, tuple[Run, ...]]  # y -> x intervals of walls on the line y
    vertical: dict[float, tuple[Run, ...]]  # x -> y intervals of walls on the line x
    goals: tuple[Cell, ...]  # goal squares; only the unused goal reward looks at them
    start: Cell = (0, 0)
    action_range: float = 0.95  # declared bound of the action spec; actions are not clipped
    bin_width: float = 0.05  # coverage-grid bin width (docs/mazes.md §5.1 step 3)


def unit_walls(layout: Layout) -> frozenset[Wall]:
    """Split every wall run into the unit walls between neighbouring cells."""
    walls = set()
    for y, runs in layout.horizontal.items():
        for lo, hi in runs:
            walls.update(((lo + k, lo + k + 1), (y, y)) for k in range(round(hi - lo)))
    for x, runs in layout.vertical.items():
        for lo, hi in runs:
            walls.update(((x, x), (lo + k, lo + k + 1)) for k in range(round(hi - lo)))
    return frozenset(walls)


LAYOUTS: dict[str, Layout] = {
    "square_a": Layout(
        horizontal={
            0.5: ((-0.5, 0.5), (1.5, 2.5), (3.5, 4.5)),
            -1.5: ((0.5, 1.5),),
            -2.5: ((0.5, 2.5),),
            -3.5: ((0.5, 3.5),),
            -4.5: ((-0.5, 4.5),),
        },
        vertical={
            -0.5: ((-4.5, 0.5),),
            0.5: ((-3.5, -2.5), (-1.5, 0.5)),
            1.5: ((-1.5, 0.5),),
            2.5: ((-2.5, 0.5),),
            3.5: ((-3.5, 0.5),),
            4.5: ((-4.5, 0.5),),
        },
        goals=((4, -1), (4, 0)),
    ),
    "square_b": Layout(
        horizontal={
            0.5: ((-0.5, 0.5), (1.5, 2.5), (3.5, 4.5)),
            -3.5: ((0.5, 1.5), (2.5, 3.5)),
            -4.5: ((-0.5, 4.5),),
        },
        vertical={
            -0.5: ((-4.5, 0.5),),
            0.5: ((-3.5, 0.5),),
            1.5: ((-3.5, 0.5),),
            2.5: ((-3.5, 0.5),),
            3.5: ((-3.5, 0.5),),
            4.5: ((-4.5, 0.5),),
        },
        goals=((4, -1), (4, 0)),
    ),
    "square_c": Layout(
        horizontal={
            0.5: ((-0.5, 0.5), (1.5, 4.5)),
            -0.5: ((2.5, 3.5),),
            -3.5: ((0.5, 1.5),),
            -4.5: ((-0.5, 2.5), (3.5, 4.5)),
        },
        vertical={
            -0.5: ((-4.5, 0.5),),
            0.5: ((-3.5, 0.5),),
            1.5: ((-3.5, 0.5),),
            2.5: ((-4.5, -0.5),),
            3.5: ((-4.5, -0.5),),
            4.5: ((-4.5, 0.5),),
        },
        goals=((4, -3), (4, -4)),
    ),
    "square_d": Layout(
        horizontal={
            0.5: ((-3.5, 3.5),),
            -0.5: ((-2.5, -0.5), (0.5, 2.5)),
            -1.5: ((-1.5, -0.5), (0.5, 1.5)),
            -2.5: ((-2.5, -1.5), (1.5, 2.5)),
            -3.5: ((-3.5, 3.5),),
        },
        vertical={
            -3.5: ((-3.5, 0.5),),
            -2.5: ((-2.5, -0.5),),
            -1.5: ((-2.5, -1.5),),
            -0.5: ((-3.5, -0.5),),
            0.5: ((-3.5, -0.5),),
            1.5: ((-2.5, -1.5),),
            2.5: ((-2.5, -0.5),),
            3.5: ((-3.5, 0.5),),
        },
        goals=((-1, -2), (-1, -3), (1, -2), (1, -3)),
    ),
    "square_tree": Layout(
        horizontal={
            0.5: ((-0.5, 0.5),),
            -1.5: ((-4.5, -0.5), (0.5, 4.5)),
            -2.5: ((-3.5, 3.5),),
            -3.5: ((-6.5, -4.5), (-3.5, -1.5), (1.5, 3.5), (4.5, 6.5)),
            -4.5: ((-5.5, -2.5), (2.5, 5.5)),
            -6.5: ((-6.5, -5.5), (-2.5, -1.5), (1.5, 2.5), (5.5, 6.5)),
        },
        vertical={
            -6.5: ((-6.5, -3.5),),
            -5.5: ((-6.5, -4.5),),
            -4.5: ((-3.5, -1.5),),
            -3.5: ((-3.5, -2.5),),
            -2.5: ((-6.5, -4.5),),
            -1.5: ((-6.5, -3.5),),
            -0.5: ((-1.5, 0.5),),
            0.5: ((-1.5, 0.5),),
            1.5: ((-6.5, -3.5),),
            2.5: ((-6.5, -4.5),),
            3.5: ((-3.5, -2.5),),
            4.5: ((-3.5, -1.5),),
            5.5: ((-6.5, -4.5),),
            6.5: ((-6.5, -3.5),),
        },
        goals=((-6, -6), (6, -6)),
    ),
    "square_bottleneck": Layout(
        horizontal={
            9.5: ((-0.5, 9.5),),
            4.5: ((-0.5, 4.5),),
            1.5: ((4.5, 6.5), (7.5, 9.5)),
            0.5: ((6.5, 7.5),),
            -0.5: ((-0.5, 9.5),),
        },
        vertical={
            -0.5: ((-0.5, 9.5),),
            4.5: ((-0.5, 0.5), (1.5, 4.5)),
            6.5: ((3.5, 9.5),),
            7.5: ((0.5, 1.5),),
            9.5: ((-0.5, 9.5),),
        },
        goals=((9, 9),),
        # Upstream copies disagree (1.0 in DISCO-DANCE's, 0.95 in the other); we keep 0.95 like
        # every other maze. It only sets the declared action bound: actions are never clipped.
        action_range=0.95,
        bin_width=0.1,
    ),
    "square_large": Layout(
        horizontal={
            9.5: ((-0.5, 9.5),),
            8.5: ((0.5, 1.5), (2.5, 7.5)),
            7.5: ((-0.5, 0.5), (3.5, 4.5), (5.5, 6.5), (7.5, 9.5)),
            6.5: ((0.5, 1.5), (3.5, 5.5), (8.5, 9.5)),
            5.5: ((-0.5, 0.5), (7.5, 8.5)),
            4.5: ((1.5, 2.5), (3.5, 5.5), (7.5, 8.5)),
            3.5: ((-0.5, 0.5), (1.5, 4.5), (7.5, 8.5)),
            2.5: ((4.5, 5.5), (6.5, 7.5), (8.5, 9.5)),
            1.5: ((1.5, 2.5), (4.5, 6.5), (7.5, 9.5)),
            0.5: ((0.5, 1.5), (3.5, 4.5), (6.5, 7.5)),
            -0.5: ((-0.5, 9.5),),
        },
        vertical={
            -0.5: ((-0.5, 9.5),),
            0.5: ((0.5, 1.5), (2.5, 3.5), (4.5, 5.5), (6.5, 7.5), (8.5, 9.5)),
            1.5: ((0.5, 1.5), (2.5, 3.5), (5.5, 6.5), (7.5, 8.5)),
            2.5: ((-0.5, 0.5), (1.5, 3.5), (4.5, 8.5)),
            3.5: ((1.5, 3.5), (5.5, 6.5)),
            4.5: ((-0.5, 0.5), (2.5, 3.5), (4.5, 8.5)),
            5.5: ((0.5, 4.5), (5.5, 6.5)),
            6.5: ((3.5, 8.5),),
            7.5: ((0.5, 1.5), (2.5, 3.5), (6.5, 7.5), (8.5, 9.5)),
            8.5: ((-0.5, 0.5), (2.5, 3.5), (4.5, 6.5), (7.5, 8.5)),
            9.5: ((-0.5, 9.5),),
        },
        goals=((9, 9),),
        bin_width=0.1,
    ),
    # Accepted by ExDM's factory but not evaluated; we start it in the origin cell.
    "square_corridor": Layout(
        horizontal={0.5: ((-5.5, 5.5),), -0.5: ((-5.5, 5.5),)},
        vertical={-5.5: ((-0.5, 0.5),), 5.5: ((-0.5, 0.5),)},
        goals=((5, 0),),
    ),
}
