"""Parameters of the CNMF half of the miniscope pipeline (guide steps 5-8).

Defaults are the ones documented in the MPS guide where it gives one; where it does not,
the default is stated in the field's description and in docs/miniscope_cnmf.md.
Penalties and thresholds that depend on the data's scale are expressed in units of the
estimated noise standard deviation, so the same values work across recordings.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class NoiseParams(_Params):
    """Step ``noise`` -- 5a (per-pixel noise) and 5b (validation and size filter)."""

    noise_scaling: float = Field(1.5, gt=0, description="factor applied to the noise estimate in bright pixels")
    smoothing_sigma: float = Field(1.0, ge=0, description="Gaussian sigma (px) smoothing the noise map; 0 = off")
    background_threshold: Literal["mean", "median", "custom"] = Field(
        "mean", description="pixels brighter than this statistic of the mean frame count as bright"
    )
    custom_threshold: float | None = Field(None, description="intensity threshold when background_threshold='custom'")
    frequency_range: tuple[float, float] = Field(
        (0.25, 0.5), description="band of the power spectrum (fraction of the sampling rate) holding only noise"
    )
    chunk_frames: int = Field(512, ge=16, description="frames per Welch segment when estimating the spectrum")
    max_segments: int = Field(8, ge=1, description="segments used at most, spread over the recording")
    check_nan: bool = Field(True, description="fail on NaN/Inf in footprints, traces or the noise map")
    full_stats: bool = Field(True, description="record per-component statistics")
    min_size: int = Field(10, ge=0, description="smallest footprint kept (pixels)")
    max_size: int = Field(1000, ge=1, description="largest footprint kept (pixels)")

    @model_validator(mode="after")
    def _custom_needs_value(self) -> "NoiseParams":
        if self.background_threshold == "custom" and self.custom_threshold is None:
            raise ValueError("background_threshold='custom' needs custom_threshold")
        if self.min_size > self.max_size:
            raise ValueError("min_size must not exceed max_size")
        lo, hi = self.frequency_range
        if not 0 < lo < hi <= 0.5:
            raise ValueError("frequency_range must satisfy 0 < low < high <= 0.5")
        return self


class TemporalParams(_Params):
    """Step ``cnmf_temporal`` -- 6a-6e (the update settings are reused by 8b): YrA, its validation, suggestions, temporal update, filter."""

    # 6a YrA
    subtract_background: bool = Field(True, description="model and subtract the background b f")
    background_components: int = Field(
        8, ge=0, description="spatially extended background components (1-photon haze, neuropil) with own time courses"
    )
    background_pixels: int = Field(2000, ge=10, description="pixels away from all units sampled to find them")
    background_model: Literal["lowrank", "ring"] = Field(
        "lowrank", description="lowrank: the background is only the components b f above. ring (CNMF-E, "
        "cnmf/ring_background.py): after this step's update, each pixel's background is also fitted as a constant "
        "plus a weight times the mean of Y - A C on a ring around it (local neuropil and out-of-focus haze that a "
        "few extended components cannot follow); steps 7 and 8 then work on Y minus it (one more pass over Y here "
        "and in step 7, the subtraction computed in every later pass). Crowded-field simulator, seed 0, hard "
        "setting: F1 0.800 -> 0.823 (150 cells), 0.825 -> 0.840 (250), corr S 0.78 -> 0.82 / 0.77 -> 0.79; default "
        "setting, six fields: F1 0.899-0.951 (lowrank 0.891-0.933), corr C 0.950-0.962, corr S 0.840-0.883; not "
        "the default because one sparse field fell to corr C 0.949 (target 0.95; docs/miniscope_cnmf.md)")
    ring_radius: int | None = Field(
        None, ge=1, description="ring: inner radius (px, Chebyshev: a square annulus) of the ring, beyond a cell's "
        "radius so that the ring lies outside the cell; None: 2 x the median equivalent radius of the kept units' "
        "footprints above 30 % of their max (8 px on both simulators, whose cells measure about 4 px there). "
        "Smaller rings suit crowded fields better (hard setting, 250 cells: F1 0.868 at 4 px, 0.860 at 5) but at "
        "5 px sparse fields of overlapping, strongly active neurons lost corr C (0.964 -> 0.948): the ring lay on "
        "the neighbours")
    ring_width: int = Field(2, ge=1, description="ring: width (px) of the ring")
    use_float32: bool = Field(True, description="compute YrA in float32")
    fix_nan: bool = Field(True, description="replace NaN in the movie by 0 before projecting")
    frame_chunk: int = Field(100, ge=1, description="frames per chunk in every pass over the movie (memory per worker)")
    # 6b validation
    validation_units: int = Field(5, ge=0, description="units sampled for the YrA check")
    validation_frames: Literal["random", "start", "middle", "end"] = "random"
    validation_n_frames: int = Field(1000, ge=1)
    # 6c suggestions
    auto_suggest: bool = Field(True, description="replace p, sparse_penalty and zero_threshold by data-driven values")
    # 6d update
    ar_order: Literal[1, 2] = Field(2, description="order p of the autoregressive calcium model")
    sparse_penalty: float = Field(
        1.0, ge=0, description="L1 weight on spikes, in units of each trace's noise standard deviation"
    )
    zero_threshold: float = Field(
        0.0, ge=0, description="spikes below this many noise standard deviations are set to zero"
    )
    shared_kernel: bool = Field(
        True, description="deconvolve every unit with the median kernel of the units (one indicator per recording)"
    )
    kernel_snr_quantile: float = Field(
        0.75, ge=0, le=1, description="the shared kernel is the median of the kernels of the units with plausible "
        "decay whose peak SNR reaches this quantile of theirs (0.5 took the median SNR: on 250-cell crowded fields "
        "median corr of binned spikes 0.80, against 0.82 with 0.75)")
    max_decay_time: float = Field(
        5.0, gt=0, description="units whose own fitted decay time (s) is longer are dropped: drift, not transients"
    )
    max_iterations: int = Field(500, ge=1, description="iteration limit of the deconvolution solver")
    tolerance: float = Field(1e-7, gt=0, description="KKT tolerance of the deconvolution solver (relative to the trace)")
    chunk_size: int = Field(5000, ge=10, description="frames per temporal chunk")
    overlap: int = Field(100, ge=0, description="frames shared by neighbouring chunks; stitched at the middle")
    # 6e filter
    min_spike_sum: float = Field(1e-6, ge=0)
    min_calcium_variance: float = Field(1e-6, ge=0)
    min_spatial_sum: float = Field(1e-6, ge=0)

    @model_validator(mode="after")
    def _overlap_fits(self) -> "TemporalParams":
        if 2 * self.overlap >= self.chunk_size:
            raise ValueError("overlap must be less than half of chunk_size")
        return self


class SpatialParams(_Params):
    """Step ``cnmf_spatial`` -- 7a-7f: dilation, clustering, bounding boxes, suggestions, LASSO update, merge."""

    # 7a dilation
    dilation_window: int = Field(3, ge=0, description="radius (px) of the dilation disk")
    dilation_threshold: float = Field(0.1, ge=0, le=1, description="only pixels above this fraction of the max are dilated")
    # 7b clustering
    max_cluster_size: int = Field(10, ge=1)
    min_area: int = Field(1, ge=0, description="components smaller than this (px) are clustered alone")
    min_intensity: float = Field(0.0, ge=0, description="components dimmer than this (max value) are clustered alone")
    overlap_threshold: float = Field(0.2, ge=0, le=1, description="dilated overlap (fraction of the smaller) linking two components")
    # 7c bounding boxes
    bbox_dilation_radius: int = Field(10, ge=0)
    bbox_padding: int = Field(20, ge=0)
    bbox_min_size: int = Field(40, ge=1)
    bbox_intensity_threshold: float = Field(0.05, ge=0, le=1)
    # 7d suggestions
    auto_suggest: bool = Field(True, description="replace min_std and the penalty range by data-driven values")
    # 7e update
    min_penalty: float = Field(
        1.0, ge=0, description="LASSO penalty (noise standard deviations) on a unit's core pixels"
    )
    max_penalty: float = Field(
        4.0, ge=0, description="LASSO penalty (noise standard deviations) at the rim of a unit's dilated support"
    )
    min_std: float = Field(0.0, ge=0, description="pixels whose temporal std is below this are left out of the update")
    lasso_iterations: int = Field(200, ge=1, description="coordinate-descent sweeps per tile")
    # 7g residual
    residual_passes: int = Field(
        1, ge=0, description="searches of the residual Y - A C for cells the initialisation missed (CNMF-E): "
        "seeds on its activity image, footprints grown on the residual (step 4's seed settings), the new units "
        "fitted with the others by one more spatial update; each search costs two passes over Y (one when it "
        "finds no seed) plus the update's pass, and the searches stop at the first that adds nothing; 0 = no search")
    residual_min_corr: float = Field(
        0.8, ge=-1, le=1, description="least local correlation of a residual seed (step 4 uses detect.min_corr, "
        "0.7): the residual also holds the found units' modelling errors and out-of-focus haze; at 0.7 a "
        "crowded field's residual gave 100 new units for 7 missed cells")
    residual_min_pnr: float = Field(
        9.0, ge=0, description="least peak-to-noise ratio of a residual seed (step 4 uses detect.min_pnr, 6)")
    # 7f merge
    smoothing: bool = Field(False, description="Gaussian-smooth the merged footprints")
    smoothing_sigma: float = Field(1.0, ge=0)
    handle_overlaps: bool = Field(True, description="a pixel in several tiles takes its value from the tile where it is most central")
    save_both: bool = Field(True, description="keep the raw and the smoothed footprints")

    @model_validator(mode="after")
    def _penalty_range(self) -> "SpatialParams":
        if self.min_penalty > self.max_penalty:
            raise ValueError("min_penalty must not exceed max_penalty")
        return self


class ExportParams(_Params):
    """Step ``export`` -- 8a-8c: final YrA and temporal update with the refined footprints, final
    filtering and export. The AR order and penalties are those step 6 settled on."""

    include_background: bool = Field(True, description="subtract the background b f before the final YrA")
    chunk_size: int = Field(5000, ge=10, description="frames per temporal chunk")
    overlap: int = Field(100, ge=0, description="frames shared by neighbouring chunks")
    # 8c filtering
    min_size: int = Field(10, ge=0, description="smallest final footprint (pixels above 10% of its max)")
    min_snr: float = Field(2.0, ge=0, description="smallest peak of C over the trace's noise std")
    min_correlation: float = Field(
        0.6, ge=-1, le=1,
        description="smallest correlation of a unit's YrA with its C: the calcium model must explain 36% of the trace "
        "(0.8 removed about 1 in 12 true cells of a crowded field, whose sparsely firing cells' traces carry "
        "neighbours' crosstalk and noise)",
    )
    # export
    formats: list[Literal["zarr", "pickle", "nwb"]] = Field(
        default_factory=lambda: ["zarr", "pickle", "nwb"],
        description="formats written besides the NumPy arrays and units.json, which are always written",
    )
    n_example_traces: int = Field(8, ge=0, description="traces drawn in the report")
    session_description: str = "miniscope recording processed by scopeline"

    @model_validator(mode="after")
    def _overlap_fits(self) -> "ExportParams":
        if 2 * self.overlap >= self.chunk_size:
            raise ValueError("overlap must be less than half of chunk_size")
        return self


#: Pipeline step name -> its parameter model (the field name in ``MiniscopeParams``).
CNMF_STEP_PARAMS: dict[str, type[BaseModel]] = {
    "noise": NoiseParams,
    "cnmf_temporal": TemporalParams,
    "cnmf_spatial": SpatialParams,
    "export": ExportParams,
}
