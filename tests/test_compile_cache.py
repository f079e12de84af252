"""The persistent compilation cache: where it lives, and that a second process loads what the
first compiled instead of compiling it again, with the same result."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edp.compile_cache import cache_dir

PROGRAM = """
import json, sys, jax, jax.numpy as jnp
from edp.compile_cache import enable_compile_cache
enable_compile_cache()
compiled = []
jax.monitoring.register_event_listener(lambda event, **kw: compiled.append(event)
                                       if event == "/jax/compilation_cache/cache_misses" else None)
x = jax.jit(lambda a: jnp.tanh(a @ a.T).sum())(jnp.arange(12.0).reshape(3, 4) / 7)
print(json.dumps({"value": float(x), "misses": len(compiled)}))
"""


@pytest.mark.parametrize("env, expected", [
    ({"JAX_COMPILATION_CACHE_DIR": "/theirs", "EDP_COMPILE_CACHE": "/mine"}, None),
    ({"EDP_COMPILE_CACHE": "off"}, None),
    ({"EDP_COMPILE_CACHE": "/mine", "XDG_CACHE_HOME": "/xdg"}, Path("/mine")),
    ({"XDG_CACHE_HOME": "/xdg"}, Path("/xdg/edp/jax")),
])
def test_the_cache_directory_follows_the_environment(monkeypatch, env, expected):
    for name in ("JAX_COMPILATION_CACHE_DIR", "EDP_COMPILE_CACHE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert cache_dir() == expected


def test_a_second_process_loads_the_program_the_first_compiled(tmp_path):
    env = {**os.environ, "EDP_COMPILE_CACHE": str(tmp_path / "cache")}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)

    def one_process() -> dict:
        done = subprocess.run([sys.executable, "-c", PROGRAM], env=env, capture_output=True,
                              text=True, check=True)
        return json.loads(done.stdout.splitlines()[-1])

    first = one_process()
    entries = sorted(p.name for p in (tmp_path / "cache").glob("*-cache"))
    second = one_process()
    assert first["misses"] >= 1 and entries
    assert second["misses"] == 0  # every program came from the cache
    assert sorted(p.name for p in (tmp_path / "cache").glob("*-cache")) == entries
    assert second["value"] == first["value"]
