"""Pieces the URLB domain modules share: building environments and the reward terms.

Every environment is built without a time limit: `URLBEnv` counts steps itself, so that all
domains (jaco included) end after an exact number of steps.
"""

from __future__ import annotations

from dm_control import suite
from dm_control.rl import control
from dm_control.utils import rewards
from lxml import etree

NO_LIMIT = float("inf")


def stock(domain: str, task: str, random) -> control.Environment:
    """A dm_control suite task, unchanged but for the lifted time limit."""
    return suite.load(domain, task, task_kwargs={"random": random, "time_limit": NO_LIMIT})


def custom(physics, task, control_timestep: float | None = None) -> control.Environment:
    """One of our tasks; `control_timestep=None` means one physics step per control step."""
    return control.Environment(physics, task, time_limit=NO_LIMIT,
                               control_timestep=control_timestep)


def at_least(x: float, target: float, margin: float, value_at_margin: float) -> float:
    """1 from `target` up, linear below: `value_at_margin` at `target - margin`, then down to 0.

    dm_control's linear `tolerance` with bounds (target, inf): the shaping of every URLB
    speed, spin and height term (docs/urlb.md §2.0).
    """
    return float(rewards.tolerance(x, bounds=(target, float("inf")), margin=margin,
                                   value_at_margin=value_at_margin, sigmoid="linear"))


def angular_momentum_y(physics) -> float:
    """Whole-body angular momentum about +y (about its centre of mass): > 0 is a forward flip."""
    return float(physics.named.data.subtree_angmom["torso"][1])


def resize_geom(xml: bytes | str, geom: str, size: str) -> bytes:
    """The model XML with the named geom's size replaced.

    URLB's cheetah and hopper copies only lengthen the floor plane, which changes rendering
    (planes are infinite for collisions), so backward runs stay on a textured floor.
    """
    root = etree.fromstring(xml.encode() if isinstance(xml, str) else xml)
    root.find(f".//geom[@name='{geom}']").set("size", size)
    return etree.tostring(root)
