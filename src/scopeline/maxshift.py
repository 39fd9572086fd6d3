"""Cryo-EM movie drift: reject aligned movies whose frame steps or total path are too large.

The public API of ``scopeline maxshift``, with the keywords of every tool: ``stream=``,
``scheduler=``, ``workers=``.

Examples
--------
>>> from scopeline import maxshift
>>> summary = maxshift.run_maxshift(["MotionCorr/job002/corrected_micrographs.star"],
...                                 "maxshift_out")                  # doctest: +SKIP
>>> maxshift.open_run("maxshift_out").redecide(rejection="and")      # doctest: +SKIP
"""

from .cryoem.maxshift import (
    MaxShiftParams,
    criteria,
    decide,
    early_late_motion,
    frame_steps,
    link_micrographs,
    max_frame_shift,
    measure_trajectory,
    reject,
    total_path,
)
from .cryoem.maxshift_run import MOTION_COLUMNS, run_maxshift
from .stream import StreamOptions
from .tools import Run, open_run

run = run_maxshift

__all__ = ["run", "run_maxshift", "MaxShiftParams", "StreamOptions", "open_run", "Run", "frame_steps",
           "max_frame_shift", "total_path", "early_late_motion", "criteria", "reject",
           "measure_trajectory", "decide", "link_micrographs", "MOTION_COLUMNS"]
