"""Fine-tuning of the pre-trained diffusion policy: one file per method (edp, idql, dql, qsm,
dipo), the shared IQL critic (iql.py) and skeleton (common.py); `methods` maps names to them."""
