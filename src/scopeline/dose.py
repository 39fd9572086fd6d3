"""Cryo-EM movie dose: measure each movie's dose, set a reference, accept or discard.

The public API of ``scopeline dose``. Every tool entry point takes the same keywords:
``stream=`` (:class:`StreamOptions`: batches, watching, minimum file age), ``scheduler=``
(a Dask scheduler address) and ``workers=`` (local worker processes; 0 = this process).

Examples
--------
>>> from scopeline import dose
>>> summary = dose.run_dose(["Movies/"], "dose_out", dose.DoseParams(samples=20),
...                         workers=0)                              # doctest: +SKIP
>>> run = dose.open_run("dose_out")                                 # doctest: +SKIP
>>> run.redecide(max_diff=3)     # new band, no movie read again    # doctest: +SKIP
"""

from .cryoem.dose import DoseParams, decide_doses, faulty_windows, measure_movie_dose
from .cryoem.dose_analysis import DOSE_COLUMNS, run_dose
from .stream import StreamOptions
from .tools import Run, open_run

run = run_dose

__all__ = ["run", "run_dose", "DoseParams", "StreamOptions", "open_run", "Run", "measure_movie_dose",
           "decide_doses", "faulty_windows", "DOSE_COLUMNS"]
