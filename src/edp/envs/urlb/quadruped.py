"""Quadruped (docs/urlb.md §2.2): stock walk/run; URLB's custom stand and jump.

The custom tasks use the stock model pre-processing with a 10 m floor (URLB's `make_model` at
walk speed): no walls, ball, target, terrain or rangefinders.
"""

from __future__ import annotations

from dm_control.suite import common, quadruped

from edp.envs.urlb.common import at_least, custom, stock

_CONTROL_TIMESTEP = 0.02
_FLOOR_SIZE = 10  # 20 s * 0.5 m/s: rendering only, planes are infinite for collisions
_JUMP_HEIGHT = 1.0


def upright(physics) -> float:
    """(1 + cos tilt) / 2: 1 upright, 0 upside down."""
    return at_least(physics.torso_upright(), 1.0, 2.0, 0.0)


def com_height(physics) -> float:
    """Height of the whole body's centre of mass (the `center_of_mass` subtreecom sensor)."""
    return float(physics.named.data.sensordata["center_of_mass"][2])


class Stand(quadruped.Move):
    """Be upright, nothing else. The stock reset: random orientation, dropped from rest."""

    def __init__(self, random):
        super().__init__(desired_speed=0, random=random)

    def get_reward(self, physics) -> float:
        return upright(physics)


class Jump(Stand):
    """Be upright with the centre of mass high (full reward from 1 m, 0.5 at the floor)."""

    def get_reward(self, physics) -> float:
        return upright(physics) * at_least(com_height(physics), _JUMP_HEIGHT, _JUMP_HEIGHT, 0.5)


def make(task: str, random):
    if task not in ("stand", "jump"):
        return stock("quadruped", task, random)
    xml = quadruped.make_model(floor_size=_FLOOR_SIZE)
    physics = quadruped.Physics.from_xml_string(xml, common.ASSETS)
    return custom(physics, {"stand": Stand, "jump": Jump}[task](random), _CONTROL_TIMESTEP)
