"""URLB task table and perturbations (docs/urlb.md §1, §4.4, §6).

Pure Python on purpose: listing and validating names (edp.envs.envid) must not import
dm_control or MuJoCo; `edp.envs.urlb.dmc.URLBEnv` builds the environments.

Names: `urlb/<domain>_<task>` (a task), `urlb/<domain>` (reward-free pre-training on the
domain's pre-training task) and either one followed by `~mass~<factor>` or `~damping~<factor>`
(the cross-embodiment variants, e.g. `urlb/walker_stand~mass~0.4`).
"""

from __future__ import annotations

from dataclasses import dataclass

DOMAINS: dict[str, tuple[str, ...]] = {
    "walker": ("stand", "walk", "run", "flip"),
    "quadruped": ("stand", "walk", "run", "jump"),
    "jaco": ("reach_top_left", "reach_top_right", "reach_bottom_left", "reach_bottom_right"),
    "cheetah": ("run", "run_backward", "flip", "flip_backward"),
    "hopper": ("hop", "hop_backward", "flip", "flip_backward"),
}

# What `urlb/<domain>` runs: URLB's primal tasks, except quadruped_stand, which the ExDM README
# passes explicitly (same dynamics and resets as URLB's quadruped_walk; only the ignored reward
# differs), and ExDM's cheetah_run / hopper_hop.
PRETRAIN_TASK: dict[str, str] = {
    "walker": "stand",
    "quadruped": "stand",
    "jaco": "reach_top_left",
    "cheetah": "run",
    "hopper": "hop",
}

# Steps per episode. Jaco counts 250 steps rather than URLB's 10 s physics-time check, which
# gives 249 or 250 steps depending on the dm_control version (docs/urlb.md §0 item 4).
EPISODE_LENGTH: dict[str, int] = {
    "walker": 1000,
    "quadruped": 1000,
    "jaco": 250,
    "cheetah": 1000,
    "hopper": 1000,
}

# Expert returns that normalise final scores (URLB issue #1): normalised = return / expert.
# URLB has none for cheetah and hopper; report raw returns there.
EXPERT_SCORES: dict[str, float] = {
    "walker_stand": 984.0,
    "walker_walk": 971.0,
    "walker_run": 796.0,
    "walker_flip": 799.0,
    "quadruped_walk": 866.0,
    "quadruped_run": 888.0,
    "quadruped_stand": 920.0,
    "quadruped_jump": 888.0,
    "jaco_reach_top_left": 191.0,
    "jaco_reach_top_right": 223.0,
    "jaco_reach_bottom_left": 193.0,
    "jaco_reach_bottom_right": 203.0,
}

PERTURBATION_FIELDS = {"mass": "body_mass", "damping": "dof_damping"}  # MuJoCo model arrays


def env_names() -> tuple[str, ...]:
    """Every unperturbed URLB env name: per domain, the domain itself, then its tasks."""
    return tuple(name for domain, tasks in DOMAINS.items()
                 for name in (f"urlb/{domain}", *(f"urlb/{domain}_{task}" for task in tasks)))


@dataclass(frozen=True)
class Perturbation:
    """Scale one MuJoCo model array (`kind` names it) by `factor` (docs/urlb.md §6)."""

    kind: str
    factor: float

    @property
    def suffix(self) -> str:
        return f"~{self.kind}~{self.factor}"

    def apply(self, model) -> None:
        """Scale in place, without recomputing derived constants (no mj_setConst), as ExDM."""
        getattr(model, PERTURBATION_FIELDS[self.kind])[:] *= self.factor
