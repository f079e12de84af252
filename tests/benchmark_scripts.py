"""Benchmark scripts are files, not an installed package: tests load them by path."""

import importlib.util
from pathlib import Path
from types import ModuleType

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def load(relative: str) -> ModuleType:
    """The module of benchmarks/<relative> (e.g. "coverage/wall_reward.py")."""
    path = BENCHMARKS / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
