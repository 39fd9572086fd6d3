"""NWB 2 export of miniscope results (pynwb)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np

from .atomic import atomic_path

__all__ = ["write_nwb"]


def write_nwb(path: Path, arrays: dict, unit_ids: np.ndarray, metadata: dict, description: str) -> None:
    """NWB 2 file: PlaneSegmentation with image masks, Fluorescence (C) and Deconvolved (S)
    RoiResponseSeries with per-frame timestamps, background as a 1-row series."""
    from pynwb import NWBHDF5IO, NWBFile
    from pynwb.ophys import Fluorescence, ImageSegmentation, OpticalChannel

    created = datetime.fromisoformat(metadata["created"])
    nwb = NWBFile(session_description=description, identifier=f"scopeline-{created.strftime('%Y%m%dT%H%M%S')}",
                  session_start_time=created)
    device = nwb.create_device(name="Miniscope")
    channel = OpticalChannel(name="OpticalChannel", description="green", emission_lambda=525.0)
    plane = nwb.create_imaging_plane(name="ImagingPlane", optical_channel=channel, device=device,
                                     description="miniscope field of view", excitation_lambda=470.0,
                                     imaging_rate=float(metadata["fps"]), indicator="GCaMP", location="unknown")
    module = nwb.create_processing_module(name="ophys", description="scopeline CNMF results")
    segmentation = ImageSegmentation(name="ImageSegmentation")
    module.add(segmentation)
    planes = segmentation.create_plane_segmentation(name="PlaneSegmentation", description="CNMF footprints",
                                                    imaging_plane=plane)
    planes.add_column(name="unit_id", description="scopeline unit id")
    for mask, uid in zip(arrays["A"], unit_ids):
        planes.add_roi(image_mask=mask.astype(np.float32, copy=False), unit_id=int(uid))
    rois = planes.create_roi_table_region(region=list(range(len(unit_ids))), description="all units")
    timestamps = np.asarray(metadata["timestamps_s"], np.float64)
    for container, series, data, unit in (("Fluorescence", "C", arrays["C"], "a.u."),
                                          ("Deconvolved", "S", arrays["S"], "a.u.")):
        holder = Fluorescence(name=container)
        module.add(holder)
        holder.create_roi_response_series(name=series, data=np.ascontiguousarray(data.T), rois=rois,
                                          unit=unit, timestamps=timestamps)
    with atomic_path(path) as tmp, NWBHDF5IO(str(tmp), "w") as io:
        io.write(nwb)
