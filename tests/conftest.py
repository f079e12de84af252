"""Test session set-up: two CPU devices, so a group of maze seeds is split across devices (and
padded when the count is odd) in every test that runs one, as on a multi-core machine; and one
compilation cache for the session's processes (the suite runs the same small programs in many
subprocesses), kept apart from the user's."""

import os
import tempfile
from pathlib import Path

import jax

from edp.compile_cache import enable_compile_cache

jax.config.update("jax_num_cpu_devices", 2)
os.environ.setdefault("EDP_COMPILE_CACHE", str(Path(tempfile.gettempdir()) / "edp-test-jax-cache"))
enable_compile_cache()
