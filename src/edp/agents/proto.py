"""ProtoRL: prototypical representation and a kNN reward against a candidate queue
(docs/baselines.md §5).

Each iteration, on one batch (s, a, s+) with s+ the observation 3 steps ahead:
  1. renormalise the prototypes C (num_protos unit rows), then one Adam step of the predictor h,
     projector p and C on the SwAV loss -mean_i sum_k Q_ik log P_ik, with
     log P = log_softmax(C normalize(p(h(s))) / tau) (online, on s) and
     Q = Sinkhorn(C normalize(h_bar(s+)) / tau) (target predictor h_bar, on s+, no gradient);
  2. renormalise C again; y = normalize(h(s+)) under the updated predictor; for each prototype
     draw one batch index from softmax over the batch of its scores C y (no temperature), write
     those num_protos embeddings into the queue at the pointer and advance it (mod queue_size);
  3. reward r_i = Euclidean distance from y_i to its topk-th nearest queue row (no log, no
     normalisation; the queue starts at zero, and a drawn candidate is at distance 0 of itself);
  4. the DDPG iteration with r, then the Polyak step of h_bar toward h (predictor_target_tau).
The encoder is the identity with states, so its target is not kept. Fine-tuning copies more
than the other agents: `ProtoAgent.finetune_whole_critic`.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

from edp.agents import ddpg, knn
from edp.agents.base import Batch, Metrics, check_fields
from edp.agents.intrinsic import IntrinsicAgent
from edp.agents.modules import OrthMLP, l2_normalize
from edp.train_state import TrainState


@dataclasses.dataclass(frozen=True)
class ProtoConfig:
    """ProtoRL's predictor, projector, prototypes and candidate queue (the DDPG backbone has its
    own group)."""

    pred_dim: int = 128
    """Width of the predictor's output (the space of the prototypes and of the queue)."""
    proj_dim: int = 512
    """Width of the projector's hidden layer."""
    num_protos: int = 512
    """Number of prototypes (also the candidates enqueued per update)."""
    tau: float = 0.1
    """Softmax temperature of the prototype scores in the loss."""
    topk: int = 3
    """The reward is the distance to the topk-th nearest queue entry."""
    queue_size: int = 2048
    """Rows of the candidate queue (a multiple of num_protos)."""
    predictor_target_tau: float = 0.05
    """Polyak rate of the target predictor (URLB encoder_target_tau)."""
    sinkhorn_iters: int = 3
    """Sinkhorn-Knopp iterations of the target assignment (hard-coded 3 in the reference)."""
    lr: float = 1e-4
    """Adam learning rate of the predictor, projector and prototypes."""

    def check(self) -> None:
        check_fields("proto", self, [
            ("pred_dim", self.pred_dim >= 1, ">= 1"),
            ("proj_dim", self.proj_dim >= 1, ">= 1"),
            ("num_protos", self.num_protos >= 1, ">= 1"),
            ("tau", self.tau > 0, "> 0"),
            ("topk", 1 <= self.topk <= self.queue_size, f"in [1, queue_size={self.queue_size}]"),
            ("queue_size", self.queue_size >= 1 and self.num_protos >= 1
             and self.queue_size % self.num_protos == 0,
             f"a positive multiple of num_protos={self.num_protos}"),
            ("predictor_target_tau", 0 < self.predictor_target_tau <= 1, "in (0, 1]"),
            ("sinkhorn_iters", self.sinkhorn_iters >= 1, ">= 1"),
            ("lr", self.lr > 0, "> 0")])


class ProtoState(struct.PyTreeNode):
    backbone: ddpg.DDPGState
    proto: TrainState  # params {"predictor", "projector", "protos"}: one optimiser
    predictor_target: ddpg.Params
    queue: jax.Array  # (queue_size, pred_dim), zero at start
    queue_ptr: jax.Array  # int32 write position


def normalize_protos(params: dict) -> dict:
    """Unit-norm prototypes (columns of the (pred_dim, num_protos) kernel), outside autograd."""
    return {**params, "protos": l2_normalize(jax.lax.stop_gradient(params["protos"]), axis=0)}


def sinkhorn(scores: jax.Array, iters: int) -> jax.Array:
    """URLB's Sinkhorn-Knopp: scores (B, K) -> assignments (B, K), each row summing to 1."""
    q = jnp.exp(scores - scores.max()).T  # prototypes x samples
    q = q / q.sum()
    num_protos, batch = q.shape
    for _ in range(iters):
        q = q / (num_protos * q.sum(axis=1, keepdims=True))
        q = q / (batch * q.sum(axis=0, keepdims=True))
    return (q / q.sum(axis=0, keepdims=True)).T


class ProtoAgent(IntrinsicAgent):
    name = "proto"
    config = ProtoConfig
    config_help = ("ProtoRL: prototypes and a queue of "
                   "candidates; reward the distance to the k-th nearest.")
    fast = dict(pred_dim=32, proj_dim=128, num_protos=64, queue_size=256)
    reward_map = True
    rewarded = "next_observation"
    # URLB `ProtoAgent.init_from`: the actor and the *whole* critic (trunk and heads); the proto
    # modules play no part in fine-tuning (the reward is extrinsic), so they are not carried over
    finetune_whole_critic = True

    def __init__(self, cfg: ProtoConfig, backbone: ddpg.DDPGConfig, obs_dim: int,
                 action_dim: int):
        cfg.check()
        super().__init__(backbone, obs_dim, action_dim)
        self.cfg = cfg
        self.predictor = OrthMLP((), cfg.pred_dim)  # one affine layer, no activation
        self.projector = OrthMLP((cfg.proj_dim,), cfg.pred_dim)
        self.tx = optax.adam(cfg.lr)
        self.intrinsic_reward = jax.jit(self._intrinsic_reward)

    def init(self, key: jax.Array) -> ProtoState:
        k_backbone, k_pred, k_proj, k_protos = jax.random.split(key, 4)
        predictor = self.predictor.init(k_pred, jnp.zeros((1, self.obs_dim)))["params"]
        params = {
            "predictor": predictor,
            "projector": self.projector.init(k_proj, jnp.zeros((1, self.cfg.pred_dim)))["params"],
            "protos": nn.initializers.orthogonal(1.0)(
                k_protos, (self.cfg.pred_dim, self.cfg.num_protos)),
        }
        return ProtoState(
            backbone=self.init_backbone(k_backbone),
            proto=TrainState.from_params(None, self.tx, params),
            predictor_target=predictor,
            queue=jnp.zeros((self.cfg.queue_size, self.cfg.pred_dim)),
            queue_ptr=jnp.zeros((), jnp.int32))

    def embed(self, predictor: ddpg.Params, obs: jax.Array) -> jax.Array:
        """normalize(h(obs)) (B, pred_dim)."""
        return l2_normalize(self.predictor.apply({"params": predictor}, obs))

    def loss(self, params: dict, predictor_target: ddpg.Params, obs: jax.Array,
             next_obs: jax.Array) -> tuple[jax.Array, None]:
        u = l2_normalize(self.projector.apply(
            {"params": params["projector"]}, self.predictor.apply(
                {"params": params["predictor"]}, obs)))
        log_p = jax.nn.log_softmax(u @ params["protos"] / self.cfg.tau, axis=-1)
        v = self.embed(predictor_target, next_obs)
        q = sinkhorn(v @ jax.lax.stop_gradient(params["protos"]) / self.cfg.tau,
                     self.cfg.sinkhorn_iters)
        return -jnp.mean(jnp.sum(jax.lax.stop_gradient(q) * log_p, axis=-1)), None

    def queue_reward(self, queue: jax.Array, y: jax.Array) -> jax.Array:
        """Distance from each embedding y (B, pred_dim) to its topk-th nearest queue row."""
        return knn.knn_distances(y, queue, self.cfg.topk)[:, -1]

    def _intrinsic_reward(self, state: ProtoState, obs: jax.Array, key: jax.Array) -> jax.Array:
        """Reward of states against the current queue (nothing enqueued); public as the jitted
        `intrinsic_reward`."""
        return self.queue_reward(state.queue, self.embed(state.proto.params["predictor"], obs))

    def _update_once(self, state: ProtoState, batch: Batch, key: jax.Array
                     ) -> tuple[ProtoState, Metrics]:
        k_candidates, k_backbone = jax.random.split(key)
        obs, next_obs = batch["observation"], batch["next_observation"]
        proto = state.proto.replace(params=normalize_protos(state.proto.params))
        proto, step = proto.apply_loss_fn(
            lambda p: self.loss(p, state.predictor_target, obs, next_obs))
        proto = proto.replace(params=normalize_protos(proto.params))

        # reward on s+ with the updated predictor: enqueue one candidate per prototype, then kNN
        y = jax.lax.stop_gradient(self.embed(proto.params["predictor"], next_obs))
        scores = (y @ proto.params["protos"]).T  # prototypes x batch
        candidates = jax.random.categorical(k_candidates, scores, axis=-1)
        queue = jax.lax.dynamic_update_slice(state.queue, y[candidates], (state.queue_ptr, 0))
        queue_ptr = (state.queue_ptr + self.cfg.num_protos) % self.cfg.queue_size
        reward = self.queue_reward(queue, y)

        backbone, metrics = self.backbone_step(state.backbone, batch, reward, k_backbone)
        predictor_target = optax.incremental_update(
            proto.params["predictor"], state.predictor_target, self.cfg.predictor_target_tau)
        state = ProtoState(backbone, proto, predictor_target, queue, queue_ptr)
        return state, {**metrics, "proto_loss": step.loss}
