"""Pre-training agents: one file per agent; `edp.agents.registry` maps names to them."""
