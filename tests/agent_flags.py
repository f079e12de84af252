"""Tiny-width CLI flags of every URL baseline, shared by the tests that run them end to end."""

BASELINES = {
    "icm": ["--icm.hidden-dim", "32"],
    "rnd": ["--rnd.hidden-dim", "32", "--rnd.rep-dim", "16"],
    "disagreement": ["--disagreement.hidden-dim", "32", "--disagreement.ensemble-size", "3"],
    "apt": ["--apt.representation", "state", "--apt.knn-rms", "--apt.knn-clip", "1e-4",
            "--apt.knn-k", "4"],
    "proto": ["--proto.pred-dim", "16", "--proto.proj-dim", "32", "--proto.num-protos", "16",
              "--proto.queue-size", "32"],
}
SKILLS = {
    "smm": ["--smm.hidden-dim", "32", "--smm.vae-hidden-dim", "32", "--smm.code-dim", "8"],
    "diayn": ["--diayn.hidden-dim", "32"],
    "aps": ["--aps.hidden-dim", "32", "--aps.num-init-steps", "150",
            "--aps.lstsq-batch-size", "64"],
    "cic": ["--cic.hidden-dim", "32"],
}
EVERY = {**BASELINES, **SKILLS}
