"""Walker (docs/urlb.md §2.1): stock stand/walk/run; URLB's custom forward flip."""

from __future__ import annotations

from dm_control.suite import walker
from dm_control.utils import rewards

from edp.envs.urlb.common import angular_momentum_y, at_least, custom, stock

_CONTROL_TIMESTEP = 0.025
_STAND_HEIGHT = 1.2
_SPIN_SPEED = 5.0


class Flip(walker.PlanarWalker):
    """Stay tall and upright while spinning forward (angular momentum about +y).

    The stock reset and observation; only the speed term of walk/run is replaced by a spin.
    """

    def __init__(self, random):
        super().__init__(move_speed=0, random=random)

    def get_reward(self, physics) -> float:
        standing = rewards.tolerance(physics.torso_height(),
                                     bounds=(_STAND_HEIGHT, float("inf")),
                                     margin=_STAND_HEIGHT / 2)
        upright = (1 + physics.torso_upright()) / 2
        stand = (3 * standing + upright) / 4
        spin = at_least(angular_momentum_y(physics), _SPIN_SPEED, _SPIN_SPEED, 0.0)
        return float(stand * (5 * spin + 1) / 6)


def make(task: str, random):
    if task != "flip":
        return stock("walker", task, random)
    physics = walker.Physics.from_xml_string(*walker.get_model_and_assets())
    return custom(physics, Flip(random), _CONTROL_TIMESTEP)
