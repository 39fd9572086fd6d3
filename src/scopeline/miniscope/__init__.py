"""Miniscope calcium imaging: raw video to footprints (A), calcium (C) and spikes (S).

The public API (the ``scopeline miniscope`` commands are a thin layer over it)::

    from scopeline import miniscope

    params = miniscope.MiniscopeParams()          # every parameter, documented defaults
    params.detect.min_pnr = 8
    result = miniscope.run("videos/", "out/", params, workers=0)
    miniscope.run_from("out/", "detect", params, scheduler="tcp://host:8786")
    miniscope.write_default_params("params.json")  # or load_params / save_params
    miniscope.export("out/")                       # re-export with out/curation.json applied
    truth = miniscope.simulate("sim/", miniscope.SimulationParams(n_frames=600))

Keywords mean the same as in the other tools: ``scheduler=`` (a Dask scheduler address,
or a local dask scheduler name) and ``workers=`` (local worker processes; 0 = in-process).
"""

from .api import RunResult, run_from, step_names, write_default_params
from .api import export_run as export
from .api import preview_pipeline as preview
from .api import run_pipeline as run
from .params import MiniscopeParams, load_params, save_params
from .simulate import SimulationParams
from .simulate import simulate_recording as simulate

__all__ = ["run", "run_from", "export", "preview", "step_names", "RunResult", "MiniscopeParams", "load_params", "save_params",
           "write_default_params", "simulate", "SimulationParams"]
