"""Cryo-EM pick cleaning: remove picked coordinates on carbon, contamination and bad ice.

The public API of ``scopeline clean``, with the keywords of every tool: ``stream=``,
``scheduler=``, ``workers=``.

Examples
--------
>>> from scopeline import clean
>>> summary = clean.run_clean(["Micrographs/"], ["AutoPick/"], "clean_out",
...                           clean.CleanParams(box_size=200))       # doctest: +SKIP
>>> clean.rethreshold("clean_out", 0.7)      # no model run         # doctest: +SKIP
"""

from .cryoem.cleaner.clean import MICROGRAPH_COLUMNS, SCORE_COLUMNS, rethreshold, run_clean
from .cryoem.cleaner.cleaning import (
    DEFAULT_THRESHOLD,
    CleanParams,
    bad_region_probability,
    decide_micrograph,
    flagged_fraction,
    score_picks,
)
from .stream import StreamOptions
from .tools import Run, open_run

run = run_clean

__all__ = ["run", "run_clean", "rethreshold", "CleanParams", "StreamOptions", "open_run", "Run",
           "DEFAULT_THRESHOLD", "bad_region_probability", "score_picks", "flagged_fraction",
           "decide_micrograph", "SCORE_COLUMNS", "MICROGRAPH_COLUMNS"]
