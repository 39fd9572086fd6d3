"""Parameters of the miniscope pipeline: one pydantic model per step, documented defaults.

``MiniscopeParams`` holds one field per step, named like the step (the step registry in
``pipeline.py`` pairs each field with its step). The CNMF steps' models are defined in
``params_cnmf.py``. The whole set saves to and loads from one JSON file
(``save_params`` / ``load_params``); a file holding only some steps or fields takes the
defaults for the rest.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..errors import ConfigError, InputError
from ..io.atomic import write_json
from .params_cnmf import ExportParams, NoiseParams, SpatialParams, TemporalParams


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ConfigParams(_Params):
    """Step 1 -- project configuration. Ids are free text (not only numeric)."""

    animal_id: str = Field("animal", min_length=1, description="animal identifier (any text)")
    session_id: str = Field("session", min_length=1, description="session identifier (any text)")
    fps: float = Field(30.0, gt=0, description="frame rate of the recording (frames/s)")
    input_dir: str | None = Field(None, description="folder with the videos (set from the command line)")
    output_dir: str | None = Field(None, description="output folder (set from the command line)")
    compress_store: bool = Field(
        True, description="LZ4-compress the working arrays in OUT/store.zarr (the corrected video about 2x "
        "smaller on disk); False trades disk for speed")


class LoadParams(_Params):
    """Step 2a -- file matching, downsampling, line-splitting detection."""

    pattern: str = Field(r"\.avi$", description="regular expression searched in each file name")
    downsample_space: int = Field(1, ge=1, description="spatial downsampling factor (1 = none)")
    downsample_time: int = Field(1, ge=1, description="temporal downsampling factor (1 = none)")
    downsample_method: Literal["subset", "mean"] = Field("subset", description="keep every n-th / average n")
    line_split: bool = Field(False, description="detect and remove line-splitting frames")
    line_split_method: Literal["left_edge", "robust"] = Field(
        "robust",
        description="left_edge: the guide's rule (left-edge mean > mean + k std); "
        "robust: left-edge excess over the frame's interior, median + k MAD",
    )
    line_split_width: int = Field(20, ge=1, description="width (px) of the left edge examined")
    line_split_threshold: float = Field(
        2.0, gt=0, description="k for left_edge (standard deviations); robust uses line_split_robust_k"
    )
    line_split_robust_k: float = Field(8.0, gt=0, description="k for robust (scaled MADs)")
    chunk_frames: int = Field(100, ge=1, description="frames per chunk read, processed and stored")


class PreprocessParams(_Params):
    """Step 2b -- denoising and background removal (per frame)."""

    denoise: Literal["median", "gaussian", "bilateral", "anisotropic", "none"] = "median"
    denoise_size: int = Field(7, ge=1, description="kernel size (px, odd) of median / gaussian / bilateral")
    gaussian_sigma: float = Field(0.0, ge=0, description="sigma of the gaussian (0 = from denoise_size)")
    bilateral_sigma_color: float = Field(25.0, gt=0, description="intensity sigma of the bilateral filter")
    bilateral_sigma_space: float = Field(5.0, gt=0, description="spatial sigma of the bilateral filter")
    anisotropic_iterations: int = Field(5, ge=1, description="Perona-Malik iterations")
    anisotropic_kappa: float = Field(20.0, gt=0, description="Perona-Malik edge threshold (intensity)")
    anisotropic_gamma: float = Field(0.2, gt=0, le=0.25, description="Perona-Malik step size")
    background: Literal["tophat", "uniform", "none"] = "tophat"
    background_size: int = Field(15, ge=1, description="tophat disk radius / uniform half-window (px)")

    @model_validator(mode="after")
    def _odd_kernel(self) -> "PreprocessParams":
        if self.denoise in ("median", "gaussian") and self.denoise_size % 2 == 0:
            raise ValueError("denoise_size must be odd for median and gaussian denoising")
        return self


class MotionParams(_Params):
    """Steps 2c-2e -- motion estimation and correction, frame QC, validation."""

    max_shift: int = Field(20, ge=1, description="largest shift searched (px); jumps must be below it")
    upsample: int = Field(20, ge=1, description="sub-pixel precision 1/upsample px")
    template_frames: int = Field(50, ge=1, description="frames averaged into each chunk template")
    mesh: tuple[int, int] | None = Field(None, description="non-rigid mesh of control points, e.g. (5, 5)")
    qc: bool = Field(True, description="drop frames whose motion is an outlier")
    qc_threshold: float = Field(5.0, gt=0, description="k: drop frames with motion > mean + k std")
    qc_min_motion: float = Field(2.0, ge=0, description="never drop frames moving less than this (px)")
    broken_frames: bool = Field(
        True, description="detect frames broken by a wireless link (bands / blocks of high-contrast noise, "
        "blacked-out regions) against their neighbouring frames (see frame_qc)")
    broken_action: Literal["drop", "interpolate"] = Field(
        "drop", description="drop broken frames, or replace each by linear interpolation between the nearest good "
        "frames before and after it (motion-corrected; the frame keeps its place in frame_index)")
    broken_window: int = Field(
        11, ge=3, description="frames of the running median each frame is compared with (odd, centred); "
        "bursts of up to window // 2 consecutive broken frames are found")
    broken_k: float = Field(8.0, gt=0, description="least excess over the neighbours' median in scaled MADs")
    broken_noise_ratio: float = Field(
        1.5, gt=1, description="least ratio of a cell's high-frequency energy (normalised by the shot noise "
        "expected at its mean) to the neighbours'")
    broken_dark_fraction: float = Field(
        0.4, gt=0, lt=1, description="a cell is blacked out when its mean falls below dark + this x "
        "(neighbours' median - dark); dark = the recording's sensor offset level")
    broken_min_cells: int = Field(
        3, ge=1, description="least noisy or blacked-out cells (of the 128 row bands x 8 column segments) for a "
        "broken frame")
    fill_value: float = Field(0.0, description="value for pixels shifted in from outside / NaN")
    validate_output: bool = Field(True, description="check the corrected data for NaN/Inf and range")

    @model_validator(mode="after")
    def _mesh(self) -> "MotionParams":
        if self.mesh is not None and min(self.mesh) < 2:
            raise ValueError("mesh needs at least 2 control points per axis")
        if self.broken_window % 2 == 0:
            raise ValueError("broken_window must be odd")
        return self


class CropParams(_Params):
    """Step 3a -- crop to the imaging field."""

    shape: Literal["circle", "rectangle", "none"] = "circle"
    auto_center: bool = Field(True, description="centre on the bright imaging field of the mean frame")
    radius_factor: float = Field(1.0, gt=0, description="scale of the detected field radius")
    center_offset: tuple[int, int] = Field((0, 0), description="(dy, dx) added to the centre (px)")
    radius: float | None = Field(None, gt=0, description="fixed radius (px) instead of the detected one")
    rectangle: tuple[int, int, int, int] | None = Field(
        None, description="(y0, y1, x0, x1) for shape='rectangle'; None = detected field box"
    )
    field_threshold: float = Field(
        0.1, gt=0, lt=1, description="field = smoothed raw mean frame above this fraction of its range")
    chunk_frames: int = Field(100, ge=1, description="frames per stored chunk of Y")


class InitParams(_Params):
    """Step 3b -- NNDSVD initialisation."""

    n_components: int = Field(30, ge=2, description="components kept (0 = background)")
    power_iterations: int = Field(5, ge=0, description="power iterations of the randomized SVD")
    sparsity_threshold: float = Field(0.05, ge=0, lt=1, description="zero values below this x component max")
    spatial_regularization: float = Field(1.0, ge=0, description="gaussian sigma (px) smoothing components")
    chunk_frames: int = Field(100, ge=1, description="frames per chunk of the SVD passes (less = less memory)")
    sample_frames: int | None = Field(
        2000, ge=1, description="frames (whole chunks spread evenly over the recording) the SVD uses, so its "
        "cost does not grow with the length; None = every frame")
    seed: int = 0
    when: Literal["needed", "always"] = Field(
        "needed", description="'needed': computed only when step 4 reads the components (detect.method = "
        "'watershed'); the default seeds method never does, and skipping the SVD's passes saves about 11 % of "
        "a 600x600 run (benchmarks/miniscope_end_to_end.py: 40-47 s of 344-404 s); 'always': computed anyway, "
        "for the variance-explained and components figures")


class DetectParams(_Params):
    """Step 4 -- watershed search (4a/4b), spatial merge (4c), traces (4d), A/C (4e),
    cleaning (4f) and temporal merge (4g)."""

    method: Literal["seeds", "watershed"] = Field(
        "seeds", description="seeds: CNMF-E-style, footprints grown from the peaks of the activity image (pixels "
        "whose high-passed traces correlate with the seed's), duplicates merged by overlap AND trace correlation; "
        "separates touching cells in crowded fields (seed_init.py). watershed: regions of the NNDSVD components "
        "and summary images (the guide's 4a-4g), for sparse fields")
    seed_min_distance: int = Field(
        2, ge=1, description="seeds: least distance between seeds (px); 3 missed touching cells at 250 cells in "
        "256 x 256 px (F1 0.845 against 0.885)")
    seed_patch_radius: int = Field(
        15, ge=2, description="seeds: half-width of the square around a seed where its footprint may grow (px; about "
        "two cell diameters)")
    seed_footprint_corr: float = Field(
        0.6, ge=-1, le=1, description="seeds: least correlation of a pixel's high-passed trace with the seed's trace "
        "for the pixel to join the footprint (higher: tighter footprints, neighbours better separated)")
    seed_merge_overlap: float = Field(
        0.5, ge=0, le=1, description="seeds: two seeds are one cell when their footprints share this fraction of the "
        "smaller one ...")
    seed_merge_corr: float = Field(
        0.6, ge=-1, le=1, description="seeds: ... AND their high-passed traces correlate at least this much")
    seed_highpass: float = Field(
        5.0, gt=0, description="seeds: running mean (s) removed from the seed traces before merging (slow "
        "background shared by neighbours)")
    min_distances: list[int] = Field([10, 20, 30], description="4a: min peak distances tried (px)")
    threshold_rels: list[float] = Field([0.1, 0.2], description="4a: relative peak thresholds tried")
    sigmas: list[float] = Field([1.0, 2.0], description="4a: smoothing sigmas tried (px)")
    sample_size: int = Field(20, ge=1, description="4a: components used in the search")
    use_summary_image: bool = Field(
        True, description="also segment the mean frame and the max-minus-mean projection (catches cells NNDSVD mixes)"
    )
    use_activity_image: bool = Field(
        True, description="also segment the activity image (peak-to-noise ratio x local correlation of the "
        "traces; catches cells that fire rarely)"
    )
    activity_smoothing: float = Field(
        0.3, ge=0, description="4b: running mean of each pixel's trace before the activity image (s; >= 1 frame)"
    )
    activity_threshold: float = Field(
        3.0, ge=0, description="4b: smoothed values below this many noise sigmas do not count in the local correlation"
    )
    min_corr: float = Field(0.7, ge=-1, le=1, description="4b: activity image: least local correlation of a cell pixel")
    min_pnr: float = Field(6.0, ge=0, description="4b: activity image: least peak-to-noise ratio of a cell pixel")
    activity_min_distance: int = Field(
        3, ge=1, description="4b: activity image: a peak is the max within this distance (px); small, so a dim "
        "cell is not hidden by the slope of a bright neighbour"
    )
    min_region_size: int = Field(9, ge=1, description="4b: smallest region kept (px)")
    max_region_size: int = Field(1000, ge=1, description="4a-4b: regions above this are implausible (px): they score worse in the search and are dropped as candidates")
    merge_distance: float = Field(25.0, ge=0, description="4c: max centre distance for merging (px)")
    merge_size_ratio: float = Field(5.0, ge=1, description="4c: max size ratio for merging")
    merge_min_overlap: float = Field(0.4, ge=0, le=1, description="4c: intersection over union needed to merge")
    min_component_size: int = Field(9, ge=1, description="4c: components smaller than this are removed (px)")
    batch_size: int = Field(10, ge=1, description="4d: components per batch")
    frame_chunk: int = Field(10000, ge=1, description="4d: most frames per chunk (never more than Y's chunks)")
    component_limit: int | None = Field(None, ge=1, description="4d: only the first n components (testing)")
    normalize: Literal["max", "l1", "l2", "none"] = Field("max", description="4e: footprint normalisation")
    flat_tolerance: float = Field(1e-6, ge=0, description="4f: traces with std below this are flat")
    temporal_corr_threshold: float = Field(0.75, ge=-1, le=1, description="4g: trace correlation to merge")
    spatial_overlap_threshold: float = Field(0.3, ge=0, le=1, description="4g: footprint overlap to merge")
    temporal_merge_rounds: int = Field(
        10, ge=1, description="4g: most rounds of temporal merging; merged traces are compared again until no "
        "more units merge"
    )


class MiniscopeParams(_Params):
    """Every parameter of the miniscope pipeline: one field per step, named like the step.

    Each field is that step's typed model with its documented defaults; see the models'
    field descriptions (``scopeline miniscope params FILE`` writes them all).
    """

    config: ConfigParams = Field(default_factory=ConfigParams, description="1: project configuration")
    load: LoadParams = Field(default_factory=LoadParams, description="2a: video files, downsampling, line splitting")
    preprocess: PreprocessParams = Field(default_factory=PreprocessParams, description="2b: denoising, background")
    motion: MotionParams = Field(default_factory=MotionParams, description="2c-2e: motion correction, frame QC")
    crop: CropParams = Field(default_factory=CropParams, description="3a: crop to the imaging field")
    init: InitParams = Field(default_factory=InitParams, description="3b: NNDSVD initialisation")
    detect: DetectParams = Field(default_factory=DetectParams, description="4: unit detection and merging")
    noise: NoiseParams = Field(default_factory=NoiseParams, description="5: per-pixel noise, size filter")
    cnmf_temporal: TemporalParams = Field(default_factory=TemporalParams, description="6: CNMF temporal update")
    cnmf_spatial: SpatialParams = Field(default_factory=SpatialParams, description="7: CNMF spatial update")
    export: ExportParams = Field(default_factory=ExportParams, description="8: final update, filter and export")


#: The parameter model of each step, by step name (the fields of ``MiniscopeParams``).
STEP_PARAMS: dict[str, type[BaseModel]] = {name: field.annotation
                                           for name, field in MiniscopeParams.model_fields.items()}


def save_params(params: BaseModel, path: str | Path) -> None:
    """Write the whole parameter set as JSON (atomically)."""
    write_json(path, params.model_dump(mode="json"))


def load_params(path: str | Path) -> BaseModel:
    """Read a parameter JSON; missing steps/fields take their defaults, unknown ones fail."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(path, "parameter file not found") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(path, f"not a readable JSON parameter file ({exc})") from None
    try:
        return MiniscopeParams.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(path, f"invalid parameter {where}: {first['msg']}",
                          "compare with `write_default_params` output") from None
