"""Cheetah (docs/urlb.md §2.3, ExDM): stock run; custom run_backward, flip, flip_backward.

No posture term: the reward is the signed speed or spin alone.
"""

from __future__ import annotations

from dm_control.suite import cheetah

from edp.envs.urlb.common import angular_momentum_y, at_least, custom, resize_geom, stock

_RUN_SPEED = 10.0
_SPIN_SPEED = 5.0


class Cheetah(cheetah.Cheetah):
    """The stock reset (random legs, 200 settling steps) with a directional reward."""

    def __init__(self, task: str, random):
        super().__init__(random=random)
        self._flip = task.startswith("flip")
        self._sign = -1.0 if task.endswith("_backward") else 1.0

    def get_reward(self, physics) -> float:
        if self._flip:
            return at_least(self._sign * angular_momentum_y(physics), _SPIN_SPEED, _SPIN_SPEED, 0.0)
        return at_least(self._sign * physics.speed(), _RUN_SPEED, _RUN_SPEED, 0.0)


def make(task: str, random):
    if task == "run":
        return stock("cheetah", task, random)
    xml, assets = cheetah.get_model_and_assets()
    physics = cheetah.Physics.from_xml_string(resize_geom(xml, "ground", "200 .8 .5"), assets)
    return custom(physics, Cheetah(task, random))
