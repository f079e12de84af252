"""A persistent cache of XLA executables, shared by every `edp` process of the machine.

A short run spends most of its time compiling: a 2,000-frame maze run of the random agent
compiles ~50 programs for 13 of its 20 s. Sweeps, resumes, seeds launched one by one and the
test suite compile the same programs again and again; with this cache the second process loads
them (that run: 20 s -> 10 s). Executables are keyed by the program, the JAX version and the
devices, so a hit is exactly what a fresh compile would give.

Where: $EDP_COMPILE_CACHE if set ("off" disables), else $XDG_CACHE_HOME/edp/jax (default
~/.cache/edp/jax). A user who set JAX_COMPILATION_CACHE_DIR keeps theirs. The cache holds at
most MAX_BYTES (least recently used entries go first); reads and writes take a file lock, so
concurrent processes never read an entry half written.
"""

from __future__ import annotations

import os
from pathlib import Path

MAX_BYTES = 2 << 30


def cache_dir() -> Path | None:
    """The directory this process should use, or None when the cache is off or the user set
    JAX's own."""
    if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return None
    chosen = os.environ.get("EDP_COMPILE_CACHE")
    if chosen is not None:
        return None if chosen.strip().lower() in ("", "off", "0", "none") else Path(chosen)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "edp" / "jax"


def enable_compile_cache() -> Path | None:
    """Point JAX at the cache (before the process compiles anything); every program is cached,
    however quickly it compiled. Returns the directory, None if unused. An unwritable
    directory only costs the speed-up: JAX then warns and compiles as usual."""
    import jax

    path = cache_dir()
    if path is None:
        return None
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    jax.config.update("jax_compilation_cache_max_size", MAX_BYTES)
    return path
