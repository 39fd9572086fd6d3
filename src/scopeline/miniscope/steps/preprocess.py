"""Step 2b -- denoising and background removal.

The filtering itself runs inside the load step's single pass over the video (see
``steps/load.py``), which stores ``pre``; its parameters are this step's, and changing
them re-runs that pass. This step records what was done and shows a frame before and
after preprocessing.
"""

from __future__ import annotations

import numpy as np

from .. import report
from ..params import PreprocessParams
from .base import Step, StepContext


class PreprocessStep(Step):
    name = "preprocess"
    title = "2b. Denoise and remove background"
    params_model = PreprocessParams
    version = "2"

    def run(self, ctx: StepContext, p: PreprocessParams) -> dict:
        pre = ctx.read("pre")
        middle = len(pre) // 2
        before = np.asarray(ctx.read("middle_frame"))
        after = np.asarray(pre[middle])
        ctx.report_figure(report.frames_figure(before, after, ("before", f"after {p.denoise} + {p.background}")),
                          "frames", f"Frame {middle} before and after preprocessing")
        return {"frames": int(len(pre)), "dtype": str(pre.dtype), "denoise": p.denoise, "background": p.background}


STEP = PreprocessStep()
