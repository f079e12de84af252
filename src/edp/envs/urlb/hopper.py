"""Hopper (docs/urlb.md §2.4, ExDM): stock hop; custom hop_backward, flip, flip_backward.

Every reward is gated by standing: torso 0.6-2 m above the foot.
"""

from __future__ import annotations

from dm_control.suite import hopper
from dm_control.utils import rewards

from edp.envs.urlb.common import angular_momentum_y, at_least, custom, resize_geom, stock

_CONTROL_TIMESTEP = 0.02
_STAND_HEIGHT = 0.6
_HOP_SPEED = 2.0
_SPIN_SPEED = 5.0


class Hopper(hopper.Hopper):
    """The stock hopping reset (random pitch and joints) with a directional reward."""

    def __init__(self, task: str, random):
        super().__init__(hopping=True, random=random)
        self._flip = task.startswith("flip")
        self._sign = -1.0 if task.endswith("_backward") else 1.0

    def get_reward(self, physics) -> float:
        standing = rewards.tolerance(physics.height(), (_STAND_HEIGHT, 2))
        if self._flip:
            move = at_least(self._sign * angular_momentum_y(physics), _SPIN_SPEED, _SPIN_SPEED, 0.0)
        else:
            move = at_least(self._sign * physics.speed(), _HOP_SPEED, _HOP_SPEED / 2, 0.5)
        return float(standing * move)


def make(task: str, random):
    if task == "hop":
        return stock("hopper", task, random)
    xml, assets = hopper.get_model_and_assets()
    physics = hopper.Physics.from_xml_string(resize_geom(xml, "floor", "100 1 .2"), assets)
    return custom(physics, Hopper(task, random), _CONTROL_TIMESTEP)
