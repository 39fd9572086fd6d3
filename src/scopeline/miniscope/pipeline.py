"""Step order, checkpoints, reuse and resume of the miniscope pipeline.

Each step (see ``steps/base.py``) gets a key chaining its parameters with the upstream
keys. A step whose completion marker holds the current key is reused; otherwise it is
cleared and re-run, and its marker is written last, so a killed run resumes at the step
it was in. ``from_step`` re-runs that step and all later ones; ``to_step`` stops after it.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from ..errors import ConfigError
from ..io.atomic import write_json
from . import report
from .steps import cnmf_spatial, cnmf_temporal, config, crop, detect, export, init, load, motion, noise, preprocess
from .steps.base import Step, StepContext

#: The pipeline's steps in order (the step registry); each one's ``name`` is its field in
#: ``MiniscopeParams`` and its ``params_model`` that field's type.
STEPS: tuple[Step, ...] = (config.STEP, load.STEP, preprocess.STEP, motion.STEP, crop.STEP, init.STEP,
                           detect.STEP, noise.STEP, cnmf_temporal.STEP, cnmf_spatial.STEP, export.STEP)
STEP_ORDER = [s.name for s in STEPS]


def available_steps() -> list[Step]:
    """The step objects in order."""
    return list(STEPS)


@dataclass
class StepRecord:
    name: str
    status: str  # "ran" | "reused"
    seconds: float
    summary: dict = field(default_factory=dict)


def _marker_path(out_dir: Path, name: str) -> Path:
    return out_dir / "steps" / name / "complete.json"


def read_marker(out_dir: Path, name: str) -> dict | None:
    path = _marker_path(out_dir, name)
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _check_range(names: list[str], from_step: str | None, to_step: str | None) -> tuple[int, int]:
    for value in (from_step, to_step):
        if value is not None and value not in names:
            raise ConfigError(None, f"unknown step {value!r}", f"choose one of {', '.join(names)}")
    start = names.index(from_step) if from_step else 0
    stop = names.index(to_step) if to_step else len(names) - 1
    if start > stop:
        raise ConfigError(None, f"--from {from_step} comes after --to {to_step}")
    return start, stop


def run_steps(
    out_dir: Path,
    params: BaseModel,
    *,
    from_step: str | None = None,
    to_step: str | None = None,
    context: dict[str, Any] | None = None,
    log: logging.Logger | None = None,
) -> list[StepRecord]:
    """Run the pipeline's steps ``from_step``..``to_step`` into ``out_dir``.

    ``context`` holds the run settings passed to every ``StepContext`` (client, fps,
    fraction, input_dir, on_bad_video).
    """
    log = log or logging.getLogger("scopeline.miniscope")
    steps = available_steps()
    names = [s.name for s in steps]
    start, stop = _check_range(names, from_step, to_step)
    records: list[StepRecord] = []
    upstream_key = ""
    for i, step in enumerate(steps[: stop + 1]):
        step_params = getattr(params, step.name)
        ctx = StepContext(out_dir=out_dir, step=step.name, upstream=names[:i][::-1], log=log,
                          all_params=params, **(context or {}))
        key = step.key(ctx, step_params, upstream_key)
        marker = read_marker(out_dir, step.name)
        current = marker is not None and marker.get("key") == key
        if i < start:
            if not current:
                raise ConfigError(out_dir, f"step {step.name!r} has no up-to-date stored result "
                                  f"(needed before --from {names[start]})",
                                  f"run from {step.name} or without --from")
        if current and (from_step is None or i < start):
            log.info("step %s: reusing stored result", step.name)
            records.append(StepRecord(step.name, "reused", 0.0, marker.get("summary") or {}))
        else:
            records.append(_run_one(step, ctx, step_params, key))
        upstream_key = key
    report.write_index(out_dir, names)
    return records


def _run_one(step: Step, ctx: StepContext, params: BaseModel, key: str) -> StepRecord:
    ctx.log.info("step %s: running", step.name)
    ctx.clear()
    t0 = time.perf_counter()
    summary = step.run(ctx, params) or {}
    seconds = time.perf_counter() - t0
    outputs = ctx.outputs()
    report.write_step_page(ctx.out_dir, step.name, step.title or step.name, summary, outputs["figures"],
                           params.model_dump(mode="json"))
    write_json(_marker_path(ctx.out_dir, step.name), {
        "key": key,
        "step": step.name,
        "version": step.version,
        "seconds": round(seconds, 3),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "outputs": outputs,
        "summary": summary,
    })
    ctx.log.info("step %s: done in %.1f s", step.name, seconds)
    return StepRecord(step.name, "ran", seconds, summary)
