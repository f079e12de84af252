"""Fine-tuning methods by name. `ddpg` fine-tunes the pre-trained Gaussian actor with
`edp.agents.ddpg.DDPGAgent(intrinsic=False)`; the others fine-tune the pre-trained diffusion
policy and are built here."""

from __future__ import annotations

from edp.finetune.common import DiffusionFinetuneAgent, DiffusionFinetuneConfig
from edp.finetune.dipo import DIPOAgent, DIPOConfig
from edp.finetune.dql import DQLAgent, DQLConfig
from edp.finetune.edp import EDPFinetuneAgent, EDPFinetuneConfig
from edp.finetune.idql import IDQLAgent, IDQLConfig
from edp.finetune.qsm import QSMAgent, QSMConfig
from edp.networks import ActionScoreNet

FINETUNE_METHODS = ("ddpg", "edp", "idql", "dql", "qsm", "dipo")
DIFFUSION_METHODS = FINETUNE_METHODS[1:]

METHOD_CLASSES: dict[str, tuple[type[DiffusionFinetuneConfig], type[DiffusionFinetuneAgent]]] = {
    "edp": (EDPFinetuneConfig, EDPFinetuneAgent),
    "idql": (IDQLConfig, IDQLAgent),
    "dql": (DQLConfig, DQLAgent),
    "qsm": (QSMConfig, QSMAgent),
    "dipo": (DIPOConfig, DIPOAgent),
}


def default_config(name: str) -> DiffusionFinetuneConfig:
    """The method's config with its default (`paper`) values."""
    _check_name(name)
    return METHOD_CLASSES[name][0]()


def make_method(name: str, policy_net: ActionScoreNet, obs_dim: int, action_dim: int,
                cfg: DiffusionFinetuneConfig | None = None) -> DiffusionFinetuneAgent:
    """The diffusion fine-tuning method `name` on `policy_net` (the pre-trained agent's
    `EDPAgent.policy_net`); `cfg` defaults to the method's default config. Build its state with
    `method.init(key, pretrained_policy)` (`EDPState.policy`)."""
    _check_name(name)
    config_cls, agent_cls = METHOD_CLASSES[name]
    cfg = config_cls() if cfg is None else cfg
    if type(cfg) is not config_cls:
        raise ValueError(f"method {name} needs a {config_cls.__name__}, "
                         f"got {type(cfg).__name__}")
    return agent_cls(cfg, policy_net, obs_dim, action_dim)


def _check_name(name: str) -> None:
    if name == "ddpg":
        raise ValueError("method ddpg fine-tunes the Gaussian actor: build it with "
                         "edp.agents.ddpg.DDPGAgent(cfg, obs_dim, action_dim, intrinsic=False)")
    if name not in METHOD_CLASSES:
        raise ValueError(f"unknown fine-tuning method '{name}'; valid methods: "
                         f"{', '.join(FINETUNE_METHODS)}")
