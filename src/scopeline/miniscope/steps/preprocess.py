"""Step 2b -- denoising and background removal of every selected frame.

Writes ``pre`` (frames, h, w): uint8 for 8-bit input (see ``filters``), else float32.
"""

from __future__ import annotations

import numpy as np

from .. import report
from ..filters import output_dtype, preprocess_frames
from ..params import PreprocessParams
from .base import Step, StepContext
from .load import select_frames


class PreprocessStep(Step):
    name = "preprocess"
    title = "2b. Denoise and remove background"
    params_model = PreprocessParams

    def run(self, ctx: StepContext, p: PreprocessParams) -> dict:
        lp = ctx.read_json("load_settings")
        varr = ctx.read("varr")
        kept = np.asarray(ctx.read("kept_frames"))
        video = select_frames(varr, kept, lp["downsample_time"], lp["downsample_method"])
        video = video.rechunk((lp["chunk_frames"], -1, -1))
        dtype = output_dtype(video.dtype, p)
        pre = video.map_blocks(preprocess_frames, p, dtype=dtype)
        ctx.write("pre", pre)
        middle = len(video) // 2
        before = np.asarray(video[middle])
        after = np.asarray(ctx.read("pre")[middle])
        ctx.report_figure(report.frames_figure(before, after, ("before", f"after {p.denoise} + {p.background}")),
                          "frames", f"Frame {middle} before and after preprocessing")
        return {"frames": int(len(video)), "dtype": str(dtype)}


STEP = PreprocessStep()
