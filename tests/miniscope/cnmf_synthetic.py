"""Small CNMF test data with known truth, and a harness running steps 5-8 on it without
steps 1-4 (their outputs are written directly as a fake upstream step)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

from scopeline.miniscope.cnmf.deconvolution import ar_from_roots, calcium_from_spikes


def make_cnmf_movie(h=48, w=48, n=8, T=1500, noise=0.3, seed=0, min_distance=9.0, background=True) -> dict:
    """Gaussian-blob footprints (max 1), AR(2) calcium from sparse spikes, a slowly varying
    background b f and white noise: Y = A C + b f + noise (frames, h, w)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    centres: list[tuple[float, float]] = []
    for _ in range(10000):
        if len(centres) == n:
            break
        c = (rng.uniform(6, h - 6), rng.uniform(6, w - 6))
        if all(np.hypot(c[0] - a, c[1] - b) >= min_distance for a, b in centres):
            centres.append(c)
    if len(centres) < n:
        raise ValueError(f"cannot place {n} neurons {min_distance} px apart in {h}x{w}")
    A = []
    for cy, cx in centres:
        s = rng.uniform(1.8, 2.4)
        a = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s * s))
        a[a < 0.05] = 0
        A.append(a / a.max())
    A = np.array(A, np.float32)
    g = ar_from_roots([0.95, 0.6])
    S = (rng.random((n, T)) < 0.02) * rng.uniform(0.5, 2.0, (n, T))
    C = np.array([calcium_from_spikes(s, g) for s in S])
    b = (0.5 * np.exp(-((yy - h / 2) ** 2 + (xx - w / 2) ** 2) / (2 * (h / 2) ** 2))).astype(np.float32)
    f = (1 + 0.3 * np.sin(np.arange(T) / 200)).astype(np.float32)
    Y = np.einsum("nhw,nt->thw", A, C) + noise * rng.standard_normal((T, h, w))
    if background:
        Y += np.einsum("hw,t->thw", b, f)
    # a deliberately imperfect initialisation: shifted, truncated footprints, rough traces
    A_init = np.array([ndimage.shift(a, (1, 1), order=1) * (a > 0.3) for a in A], np.float32)
    A_init /= A_init.reshape(n, -1).max(axis=1)[:, None, None]
    return dict(Y=Y.astype(np.float32), A=A, C=C.astype(np.float32), S=S.astype(np.float32), g=g,
                b=b, f=f, A_init=A_init, noise=noise)


def write_fake_upstream(out_dir: Path, data: dict, fps: float = 10.0) -> None:
    """Store what steps 1-4 hand to step 5, as a completed step named 'detect'."""
    from scopeline.io.atomic import write_json
    from scopeline.miniscope.steps.base import StepContext

    ctx = StepContext(out_dir=Path(out_dir), step="detect", upstream=[], fps=fps)
    Y = data["Y"]
    n = len(data["A_init"])
    ctx.write("Y", Y, chunks=(250,) + Y.shape[1:])
    ctx.write("mean_frame", Y.mean(axis=0))
    ctx.write("max_frame", Y.max(axis=0))
    ctx.write("frame_index", np.arange(len(Y), dtype=np.int64))
    ctx.write("A_init", data["A_init"])
    ctx.write("C_init", np.zeros((n, len(Y)), np.float32))
    ctx.write("b_init", data["b"])
    ctx.write("f_init", data["f"])
    ctx.write("unit_ids", np.arange(n, dtype=np.int64) + 1)
    write_json(ctx.step_dir / "complete.json", {"key": "fake", "outputs": ctx.outputs(), "summary": {}})


def run_cnmf_steps(out_dir: Path, params: dict | None = None, client=None, fps: float = 10.0, names=None) -> dict:
    """Run steps 5-8 (or ``names``) in order with the pipeline's step runner."""
    from scopeline.miniscope import pipeline
    from scopeline.miniscope.params_cnmf import CNMF_STEP_PARAMS
    from scopeline.miniscope.steps.base import StepContext

    order = ["noise", "cnmf_temporal", "cnmf_spatial", "export"]
    names = names or order
    params = params or {}
    summaries = {}
    for name in names:
        step = __import__(f"scopeline.miniscope.steps.{name}", fromlist=["STEP"]).STEP
        upstream = order[: order.index(name)][::-1] + ["detect"]
        ctx = StepContext(out_dir=Path(out_dir), step=name, upstream=upstream, client=client, fps=fps)
        model = CNMF_STEP_PARAMS[name](**params.get(name, {}))
        summaries[name] = pipeline._run_one(step, ctx, model, key=f"test-{name}").summary
    return summaries
