"""Step 1 -- project configuration: ids, folders, frame rate."""

from __future__ import annotations

from ..params import ConfigParams
from .base import Step, StepContext


class ConfigStep(Step):
    name = "config"
    title = "1. Project configuration"
    params_model = ConfigParams

    def run(self, ctx: StepContext, params: ConfigParams) -> dict:
        project = {
            "animal_id": params.animal_id,
            "session_id": params.session_id,
            "fps": params.fps,
            "input_dir": str(ctx.input_dir) if ctx.input_dir else params.input_dir,
            "output_dir": str(ctx.out_dir),
            "fraction": ctx.fraction,
        }
        ctx.write_json("project", project)
        return project

    def key(self, ctx, params, upstream_key):  # the output folder does not change results
        return super().key(ctx, params.model_copy(update={"output_dir": None}), upstream_key)


STEP = ConfigStep()
