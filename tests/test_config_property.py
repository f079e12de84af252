"""Property: any numeric value in any field of a run config is a valid config or one line.

Hypothesis draws values (negative, zero, huge, NaN, infinite) for up to three numeric fields of
PretrainConfig / FinetuneConfig, nested agent and method groups included, and the whole
validation pass (`edp.preflight`, what a run does before it writes anything) must either accept
the config or raise a ConfigError whose message is one line; any other exception is a bug.
"""

import dataclasses
import typing

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edp.config import ConfigError, PretrainConfig
from edp.finetune.config import FinetuneConfig
from edp.preflight import check_finetune, check_pretrain


def numeric_fields(cls, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], type]]:
    """(path, int or float) of every numeric field, nested dataclasses included."""
    hints = typing.get_type_hints(cls)
    found = []
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        if dataclasses.is_dataclass(kind):
            found += numeric_fields(kind, (*prefix, f.name))
        elif kind in (int, float):
            found.append(((*prefix, f.name), kind))
    return found


def replace(cfg, path: tuple[str, ...], value):
    if len(path) == 1:
        return dataclasses.replace(cfg, **{path[0]: value})
    return dataclasses.replace(cfg, **{path[0]: replace(getattr(cfg, path[0]), path[1:], value)})


INTS = st.one_of(st.integers(-3, 3), st.integers(-2**70, 2**70),
                 st.sampled_from([2**31 - 1, 2**31, 2**63, 10**9]))
FLOATS = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, 1.0]))


def edits(cls):
    fields = numeric_fields(cls)
    assert len(fields) > 60  # the nested agent and method groups are in
    field = st.sampled_from(fields).flatmap(
        lambda f: st.tuples(st.just(f[0]), INTS if f[1] is int else st.one_of(FLOATS, INTS)))
    return st.lists(field, min_size=1, max_size=3)


def assert_valid_or_one_line(check, cfg) -> None:
    try:
        check(cfg)
    except ConfigError as exc:
        message = str(exc)
        assert message and "\n" not in message, message


def apply(cfg, changes):
    for path, value in changes:
        cfg = replace(cfg, path, value)
        if path[0] in {"icm", "rnd", "disagreement", "apt", "proto", "smm", "diayn", "aps",
                       "cic", "edp", "idql", "dql", "qsm", "dipo"}:
            field = "agent" if isinstance(cfg, PretrainConfig) else "method"
            cfg = dataclasses.replace(cfg, **{field: path[0]})  # the group is in use
    return cfg


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edits(PretrainConfig))
def test_pretrain_config_is_valid_or_one_line(changes):
    cfg = apply(PretrainConfig(env="maze/square_a", agent="ddpg"), changes)
    assert_valid_or_one_line(check_pretrain, cfg)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edits(FinetuneConfig))
def test_finetune_config_is_valid_or_one_line(changes):
    cfg = apply(FinetuneConfig(env="maze/square_a:far_end"), changes)
    assert_valid_or_one_line(lambda c: check_finetune(c, snapshot_pending=True), cfg)
