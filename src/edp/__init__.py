"""edp: unsupervised reinforcement learning with diffusion models (Exploratory Diffusion Policy)."""

__version__ = "0.1.0"
