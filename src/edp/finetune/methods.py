"""Fine-tuning methods by name. `ddpg` fine-tunes the pre-trained Gaussian actor with the
pre-trained agent's `finetune_agent`; the others fine-tune the pre-trained diffusion policy and
are built here. `NEEDS` is what each method takes from a snapshot (the agent's `handoff`)."""

from __future__ import annotations

from edp.finetune.common import DiffusionFinetuneAgent, DiffusionFinetuneConfig
from edp.finetune.dipo import DIPOAgent, DIPOConfig
from edp.finetune.dql import DQLAgent, DQLConfig
from edp.finetune.edp import EDPFinetuneAgent, EDPFinetuneConfig
from edp.finetune.idql import IDQLAgent, IDQLConfig
from edp.finetune.qsm import QSMAgent, QSMConfig
from edp.train_state import TrainState

METHOD_CLASSES: dict[str, tuple[type[DiffusionFinetuneConfig], type[DiffusionFinetuneAgent]]] = {
    "edp": (EDPFinetuneConfig, EDPFinetuneAgent),
    "idql": (IDQLConfig, IDQLAgent),
    "dql": (DQLConfig, DQLAgent),
    "qsm": (QSMConfig, QSMAgent),
    "dipo": (DIPOConfig, DIPOAgent),
}
DIFFUSION_METHODS = tuple(METHOD_CLASSES)
FINETUNE_METHODS = ("ddpg", *DIFFUSION_METHODS)
NEEDS = {"ddpg": "actor", **dict.fromkeys(DIFFUSION_METHODS, "diffusion_policy")}


def default_config(name: str) -> DiffusionFinetuneConfig:
    """The method's config with its default (`paper`) values."""
    _check_name(name)
    return METHOD_CLASSES[name][0]()


def make_method(name: str, pretrained_policy: TrainState, obs_dim: int, action_dim: int,
                cfg: DiffusionFinetuneConfig | None = None, clip_actions: bool = False
                ) -> DiffusionFinetuneAgent:
    """The diffusion fine-tuning method `name` starting from `pretrained_policy` (the
    pre-trained agent's `EDPState.policy`); `cfg` defaults to the method's default config;
    `clip_actions` for a run that clips its actions (its critic scores clip(a))."""
    _check_name(name)
    config_cls, agent_cls = METHOD_CLASSES[name]
    cfg = config_cls() if cfg is None else cfg
    if type(cfg) is not config_cls:
        raise ValueError(f"method {name} needs a {config_cls.__name__}, "
                         f"got {type(cfg).__name__}")
    return agent_cls(cfg, pretrained_policy, obs_dim, action_dim, clip_actions)


def _check_name(name: str) -> None:
    if name == "ddpg":
        raise ValueError("method ddpg fine-tunes the Gaussian actor: build it with the "
                         "pre-trained agent's finetune_agent(cfg, state)")
    if name not in METHOD_CLASSES:
        raise ValueError(f"unknown fine-tuning method '{name}'; valid methods: "
                         f"{', '.join(FINETUNE_METHODS)}")
