"""Jaco reach (docs/urlb.md §2.5): dm_control's composer `Reach` with the brick at a fixed corner.

URLB's change to the stock `reach_duplo_features` task is only where the Duplo brick goes: a
fixed corner per task instead of a random spot in a +-0.1 m box (it is still rotated about z at
random and settled). Reward: gaussian in the distance between the hand's pinch site and the
brick, 1 within 5 cm.
"""

from __future__ import annotations

from typing import NamedTuple

from dm_control import composer
from dm_control.entities import props
from dm_control.manipulation import reach
from dm_control.manipulation.shared import arenas, constants, observations, robots, workspaces

TARGETS = {  # brick (x, y) in the world frame; top = +y (towards the arm base), left = -x
    "reach_top_left": (-0.09, 0.09),
    "reach_top_right": (0.09, 0.09),
    "reach_bottom_left": (-0.09, -0.09),
    "reach_bottom_right": (0.09, -0.09),
}
_PROP_Z = 0.001  # dropped from just above the floor, then settled
_TCP_BOX = workspaces.BoundingBox(lower=(-0.1, -0.1, 0.2), upper=(0.1, 0.1, 0.4))


class _Workspace(NamedTuple):
    """What `reach.Reach` reads from a workspace; a degenerate target box fixes the brick."""

    target_bbox: workspaces.BoundingBox
    tcp_bbox: workspaces.BoundingBox
    arm_offset: tuple


def make(task: str, random) -> composer.Environment:
    x, y = TARGETS[task]
    settings = observations.PERFECT_FEATURES  # states: proprioception and prop pose, no cameras
    brick = props.Duplo(observable_options=observations.make_options(
        settings, observations.FREEPROP_OBSERVABLES))
    workspace = _Workspace(
        target_bbox=workspaces.BoundingBox(lower=(x, y, _PROP_Z), upper=(x, y, _PROP_Z)),
        tcp_bbox=_TCP_BOX, arm_offset=robots.ARM_OFFSET)
    reach_task = reach.Reach(
        arena=arenas.Standard(), arm=robots.make_arm(obs_settings=settings),
        hand=robots.make_hand(obs_settings=settings), prop=brick, obs_settings=settings,
        workspace=workspace, control_timestep=constants.CONTROL_TIMESTEP)
    return composer.Environment(reach_task, random_state=random)
