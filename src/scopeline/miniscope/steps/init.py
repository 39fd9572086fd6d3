"""Step 3b -- NNDSVD initialisation of the cropped video.

Writes ``nndsvd_spatial`` (k, h, w; regularised, component 0 = background),
``nndsvd_temporal`` (k, sampled frames), ``nndsvd_frames`` (their indices in ``Y``; every
frame when the recording is shorter than ``init.sample_frames``), ``variance_explained``
(k,) cumulative, ``b_init`` (h, w) and ``f_init`` (sampled frames,) from component 0.
The SVD reads only whole chunks spread over the recording (``init.sample_frames``
frames), so its cost does not grow with the recording's length. With ``init.when =
"needed"`` (default) the step computes and writes nothing unless step 4 uses the
components (``detect.method = "watershed"``).
"""

from __future__ import annotations

import numpy as np

from .. import report
from ..nndsvd import nndsvd, randomized_svd, regularize_components, sampled_frames, variance_explained
from ..params import InitParams
from .base import Step, StepContext


class InitStep(Step):
    name = "init"
    title = "3b. NNDSVD initialisation"
    params_model = InitParams
    version = "4"  # every pass on a sample of chunks

    def fingerprint(self, ctx: StepContext, params: InitParams) -> dict:
        return {"detect_method": _detect_method(ctx)}

    def run(self, ctx: StepContext, p: InitParams) -> dict:
        if p.when == "needed" and _detect_method(ctx) != "watershed":
            reason = "skipped: detect.method = 'seeds' does not use the NNDSVD components (init.when = 'always' computes them)"
            ctx.log.info("init: %s", reason)
            return {"skipped": reason}
        Y = ctx.read("Y")
        T, h, w = Y.shape
        if Y.chunks[0][0] != p.chunk_frames:
            Y = Y.rechunk((p.chunk_frames, h, w))
        video2d = Y.reshape(T, h * w)
        u, s, v, energy = randomized_svd(video2d, p.n_components, p.power_iterations, p.seed, return_energy=True,
                                         sample_frames=p.sample_frames)
        W, H = nndsvd(u, s, v)
        spatial = regularize_components(H, (h, w), p.spatial_regularization, p.sparsity_threshold)
        cumulative = variance_explained(s, energy)
        ctx.write("nndsvd_spatial", spatial)
        ctx.write("nndsvd_temporal", W.T.copy())
        ctx.write("nndsvd_frames", sampled_frames(video2d.chunks[0], p.sample_frames).astype(np.int64))
        ctx.write("variance_explained", cumulative)
        ctx.write("b_init", H[0].reshape(h, w).astype(np.float32))
        ctx.write("f_init", W[:, 0].astype(np.float32))
        ctx.report_figure(report.variance_figure(cumulative), "variance", "Cumulative variance explained")
        mean_frame = np.asarray(ctx.read("mean_frame"))
        ctx.report_figure(report.components_figure(mean_frame, spatial[1:], "NNDSVD components 1+"),
                          "components", "NNDSVD spatial components over the mean frame")
        return {"components": int(len(s)), "variance_explained": [round(float(c), 5) for c in cumulative]}


def _detect_method(ctx: StepContext) -> str:
    from ..params import DetectParams

    return (ctx.all_params.detect if ctx.all_params is not None else DetectParams()).method


STEP = InitStep()
