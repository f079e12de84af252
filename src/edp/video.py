"""Evaluation videos: frames from `env.render()` written as H.264 mp4 (imageio + its bundled
ffmpeg binary, so no system ffmpeg is needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

FPS = 30


def check_renderable(env) -> None:
    """Fail before training, with what to do, if `env` cannot render frames here."""
    if not hasattr(env, "render"):
        raise ValueError(f"--video needs a MuJoCo (urlb/...) env; {env.name} has no renderer "
                         "(mazes: see coverage.png)")
    try:
        env.reset()
        frame = env.render()
    except Exception as exc:  # MuJoCo raises a variety of GL errors
        raise ValueError(f"cannot render {env.name} ({exc}); headless rendering needs EGL "
                         "(Debian: apt install libegl1) or OSMesa (apt install libosmesa6 and "
                         "MUJOCO_GL=osmesa)") from exc
    if np.asarray(frame).ndim != 3:
        raise ValueError(f"{env.name}.render() returned shape {np.shape(frame)}, not (H, W, 3)")


def write_mp4(path: Path, frames: list[np.ndarray], fps: int = FPS) -> Path:
    """Write RGB frames (H, W, 3) uint8 to `path` (via a temporary name: never half a file)."""
    import imageio.v2 as imageio

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.mp4")
    with imageio.get_writer(tmp, fps=fps, codec="libx264", macro_block_size=8) as writer:
        for frame in frames:
            writer.append_data(np.asarray(frame, np.uint8))
    tmp.replace(path)
    return path
