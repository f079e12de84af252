"""Test session set-up: two CPU devices, so a group of maze seeds is split across devices (and
padded when the count is odd) in every test that runs one, as on a multi-core machine."""

import jax

jax.config.update("jax_num_cpu_devices", 2)
