"""Realistic crowded one-photon miniscope fields for tests and benchmarks.

A thin layer of densely packed neurons seen through a GRIN-lens miniscope, as in CA1
(about 45,000 cells/mm^3 at 250 cells in a 256 x 256 px field of 1.7 um/px with a 40 um
thick layer in focus). The generating model deliberately differs from the model the
pipeline fits:

* **Footprints**: somata (irregular ellipses, radius 5-7 um) blurred by scattering (a
  Gaussian core plus a wide halo), shaded by vessels; observed footprints overlap their
  neighbours. The ground truth ``A`` is this observed footprint (max 1).
* **Calcium**: spikes from a Poisson process (rates log-uniform in 0.05-2 Hz by default)
  through a per-cell GCaMP-like double-exponential kernel (rise 40-150 ms, decay
  0.4-1.2 s, not an AR(1)/AR(2) process at the frame rate) and a saturating nonlinearity
  ``F = amplitude * x / (1 + x / K)`` of the summed kernel ``x`` (``K`` per cell). The
  truth ``C`` is ``F`` in grey levels at the footprint's maximum; ``S`` the spike counts.
* **Background**: out-of-focus cells (10-60 um from focus, their light spread by a blur
  growing with the defocus, with their own activity) as diffuse signal, neuropil (a few smooth spatial patterns, each with its own slow dynamics
  and a share of the population activity), static autofluorescence, vessels (dark,
  slightly pulsating), vignetting of the imaging field, photobleaching.
* **Sensor and motion**: Poisson (shot) and Gaussian read noise, 8-bit quantisation;
  rigid motion (slow drift plus a few jumps) and a smooth non-rigid deformation
  (two spatial modes with their own time courses, about 1 px).

``simulate_dense_recording(folder, DenseSimulationParams(...))`` writes 0.avi, 1.avi, ...
(FFV1, lossless) and ``truth.npz`` in the layout of :mod:`.simulate` (``A`` (n, h, w) in
tissue coordinates, ``C``, ``S`` (n, T), ``displacement``, ``shifts``, ``centers``, ...),
so :func:`.cnmf.metrics.evaluate_run` scores runs on it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

from .simulate import write_recording


class DenseSimulationParams(BaseModel):
    """Settings of :func:`simulate_dense_recording` (lengths in px unless noted)."""

    height: int = Field(256, ge=64)
    width: int = Field(256, ge=64)
    n_frames: int = Field(2000, ge=1)
    n_cells: int = Field(250, ge=0, description="in-focus neurons in the imaging field")
    fps: float = Field(20.0, gt=0)
    pixel_size_um: float = Field(1.7, gt=0, description="for the density only")
    layer_thickness_um: float = Field(40.0, gt=0, description="depth of the in-focus layer (for the density only)")
    frames_per_file: int = Field(1000, ge=1)
    seed: int = 0
    soma_radius: tuple[float, float] = Field((3.0, 4.2), description="soma semi-axes range (px)")
    min_separation: float = Field(6.0, description="smallest distance between in-focus soma centres (px)")
    scatter_sigma: tuple[float, float] = Field((1.5, 2.5), description="Gaussian core of the scattering blur (px)")
    halo_sigma: float = Field(6.0, description="wide halo of the scattering blur (px)")
    halo_fraction: float = Field(0.25, ge=0, description="share of a cell's light in the halo")
    out_of_focus_factor: float = Field(1.5, ge=0, description="out-of-focus cells per in-focus cell")
    out_of_focus_depth_um: tuple[float, float] = Field(
        (10.0, 60.0), description="distance of out-of-focus cells from the in-focus layer (um)")
    defocus_blur: float = Field(
        0.5, gt=0, description="blur radius (sigma) grown per um of defocus (um/um, about tan of the collection angle)")
    rate_range: tuple[float, float] = Field((0.05, 2.0), description="firing rates, log-uniform (spikes/s)")
    tau_rise_s: tuple[float, float] = (0.04, 0.15)
    tau_decay_s: tuple[float, float] = (0.4, 1.2)
    spike_amplitude: tuple[float, float] = Field((10.0, 25.0), description="peak of one isolated spike (grey levels)")
    saturation: tuple[float, float] = Field((3.0, 8.0), description="K of x / (1 + x / K) (spikes)")
    cell_baseline: tuple[float, float] = Field((3.0, 10.0), description="resting fluorescence (grey levels)")
    autofluorescence: float = Field(45.0, description="static background at the field centre (grey levels)")
    neuropil_level: float = Field(25.0, description="mean neuropil (grey levels)")
    neuropil_fluctuation: float = Field(0.15, ge=0, description="relative slow neuropil fluctuation")
    neuropil_scale: float = Field(18.0, gt=0, description="spatial scale (Gaussian sigma, px) of the neuropil patterns")
    n_vessels: int = Field(3, ge=0)
    vessel_absorption: tuple[float, float] = Field((0.3, 0.6), description="fraction of light a vessel absorbs")
    vignetting: float = Field(0.5, ge=0, lt=1, description="relative drop of brightness at the field edge")
    field_radius_fraction: float = Field(0.48, description="imaging field radius / min(h, w)")
    bleach_fraction: float = Field(0.25, ge=0, lt=1, description="fraction of brightness lost by the end")
    gain: float = Field(0.25, gt=0, description="grey levels per photon")
    read_noise: float = Field(1.5, ge=0, description="grey levels")
    black_level: float = Field(4.0, ge=0, description="sensor offset (grey levels)")
    drift_std: float = Field(0.03, ge=0, description="random-walk step of the rigid drift (px per frame)")
    n_jumps: int = Field(2, ge=0)
    jump_size: float = Field(4.0, ge=0, description="size of sudden rigid jumps (px)")
    nonrigid_amplitude: float = Field(1.0, ge=0, description="peak non-rigid displacement (px)")

    def density_per_mm3(self) -> float:
        """In-focus cells per mm^3 of the imaging field's layer."""
        radius_mm = self.field_radius_fraction * min(self.height, self.width) * self.pixel_size_um / 1000
        return self.n_cells / (np.pi * radius_mm**2 * self.layer_thickness_um / 1000)


#: The harder setting of the crowded-field simulator (``DenseSimulationParams(**HARD)``):
#: twice the out-of-focus cells, nearer the focal plane (so less blurred: blobs of about
#: 4-12 px, cell-like), twice the neuropil with twice its slow fluctuation, on a finer
#: spatial scale (8 px instead of 18) -- more local haze than the default.
HARD = {"out_of_focus_factor": 3.0, "out_of_focus_depth_um": (10.0, 40.0), "neuropil_level": 50.0,
        "neuropil_fluctuation": 0.3, "neuropil_scale": 8.0}


def gcamp_kernel(tau_rise: float, tau_decay: float, fps: float, length_s: float = 6.0) -> np.ndarray:
    """Double-exponential kernel sampled at ``fps`` (spike at the start of frame 0, the
    frame integrates the light over its exposure), peak 1."""
    t = np.arange(int(length_s * fps) + 1) / fps
    # average over the exposure of each frame (10 sub-samples)
    sub = t[:, None] + np.linspace(0, 1 / fps, 10, endpoint=False)[None, :]
    k = (np.exp(-sub / tau_decay) - np.exp(-sub / tau_rise)).mean(axis=1)
    return k / k.max()


def saturating_calcium(spikes: np.ndarray, kernel: np.ndarray, amplitude: float, saturation: float) -> np.ndarray:
    """``amplitude * x / (1 + x / saturation)`` of ``x`` = spikes (T,) filtered by ``kernel``;
    one isolated spike peaks at about ``amplitude / (1 + 1 / saturation)``."""
    from scipy.signal import fftconvolve

    x = fftconvolve(spikes, kernel)[: len(spikes)]
    x = np.maximum(x, 0)
    return amplitude * (1 + 1 / saturation) * x / (1 + x / saturation)


def _soma(shape, center, radii, angle, rng) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(np.float64)
    dy, dx = yy - center[0], xx - center[1]
    cos, sin = np.cos(angle), np.sin(angle)
    u, v = cos * dx + sin * dy, -sin * dx + cos * dy
    theta = np.arctan2(v, u)
    wobble = 1 + sum(rng.uniform(0, 0.1) * np.cos(k * theta + rng.uniform(0, 2 * np.pi)) for k in (2, 3))
    rho = np.sqrt((u / radii[0]) ** 2 + (v / radii[1]) ** 2) / wobble
    return np.clip(1.5 * (1 - rho), 0, 1)  # filled soma with a 1/3-radius soft edge


def _blurred_cell(shape, center, radii, angle, core: float, halo: float, halo_fraction: float, rng,
                  box: int = 24):
    """Observed footprint of one soma on a box around it: (y0, x0, patch)."""
    from scipy.ndimage import gaussian_filter

    cy, cx = int(round(center[0])), int(round(center[1]))
    y0, x0 = max(cy - box, 0), max(cx - box, 0)
    y1, x1 = min(cy + box + 1, shape[0]), min(cx + box + 1, shape[1])
    soma = _soma((y1 - y0, x1 - x0), (center[0] - y0, center[1] - x0), radii, angle, rng)
    patch = (1 - halo_fraction) * gaussian_filter(soma, core) + halo_fraction * gaussian_filter(soma, halo)
    return y0, x0, patch


def _smooth_series(rng, n: int, length: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter1d

    series = gaussian_filter1d(rng.standard_normal(n + 6 * int(length) + 2), max(length, 0.5), mode="wrap")[:n]
    series = series - series.mean()
    return series / (series.std() + 1e-12)


def _activity(rng, n: int, p: DenseSimulationParams):
    """Spikes (n, T) and calcium (n, T) of ``n`` cells with per-cell kernels."""
    T = p.n_frames
    rates = np.exp(rng.uniform(*np.log(p.rate_range), size=n))
    S = rng.poisson(np.repeat(rates[:, None] / p.fps, T, axis=1)).astype(np.float32)
    C = np.zeros((n, T), np.float32)
    for i in range(n):
        kernel = gcamp_kernel(rng.uniform(*p.tau_rise_s), rng.uniform(*p.tau_decay_s), p.fps)
        C[i] = saturating_calcium(S[i], kernel, rng.uniform(*p.spike_amplitude), rng.uniform(*p.saturation))
    return S, C, rates


def _vessels(rng, shape, n: int, absorption) -> np.ndarray:
    """Transmission map (h, w) in (0, 1]: dark smooth curves."""
    from scipy.ndimage import gaussian_filter

    h, w = shape
    dark = np.zeros(shape)
    yy, xx = np.mgrid[:h, :w]
    for _ in range(n):
        # a gently curving line across the field
        y = rng.uniform(0, h)
        angle = rng.uniform(0, np.pi)
        width = rng.uniform(2.0, 4.5)
        bend = rng.uniform(-0.004, 0.004)
        u = (xx - w / 2) * np.cos(angle) + (yy - y) * np.sin(angle)
        v = -(xx - w / 2) * np.sin(angle) + (yy - y) * np.cos(angle) - bend * u**2
        dark = np.maximum(dark, rng.uniform(*absorption) * np.exp(-0.5 * (v / width) ** 2))
    return np.clip(1 - gaussian_filter(dark, 0.7), 0.05, 1)


def make_dense_truth(p: DenseSimulationParams) -> dict:
    """Everything except the noisy frames."""
    from scipy import sparse
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(p.seed)
    h, w, T = p.height, p.width, p.n_frames
    field_center = np.array([h / 2 + rng.uniform(-2, 2), w / 2 + rng.uniform(-2, 2)])
    field_radius = p.field_radius_fraction * min(h, w)
    margin = 4 + p.jump_size + max(p.soma_radius)

    def place(count, min_sep, radius):
        pts: list[np.ndarray] = []
        for _ in range(300 * max(count, 1)):
            if len(pts) == count:
                break
            r, a = radius * np.sqrt(rng.uniform()), rng.uniform(0, 2 * np.pi)
            c = field_center + r * np.array([np.sin(a), np.cos(a)])
            if not pts or np.min(np.hypot(*(np.array(pts) - c).T)) >= min_sep:
                pts.append(c)
        return np.array(pts).reshape(-1, 2)

    centers = place(p.n_cells, p.min_separation, field_radius - margin)
    n = len(centers)
    transmission = _vessels(rng, (h, w), p.n_vessels, p.vessel_absorption)

    rows, cols, vals = [], [], []
    for i, c in enumerate(centers):
        y0, x0, patch = _blurred_cell((h, w), c, rng.uniform(*p.soma_radius, size=2), rng.uniform(0, np.pi),
                                      rng.uniform(*p.scatter_sigma), p.halo_sigma, p.halo_fraction, rng)
        ph, pw = patch.shape
        patch = patch * transmission[y0 : y0 + ph, x0 : x0 + pw]
        patch = patch / patch.max()
        patch[patch < 1e-3] = 0
        yy, xx = np.nonzero(patch)
        rows.append(np.full(len(yy), i))
        cols.append((yy + y0) * w + xx + x0)
        vals.append(patch[yy, xx])
    A = sparse.csr_matrix((np.concatenate(vals) if n else np.zeros(0),
                           (np.concatenate(rows) if n else np.zeros(0, int),
                            np.concatenate(cols) if n else np.zeros(0, int))), shape=(n, h * w), dtype=np.float32)
    S, C, rates = _activity(rng, n, p)
    baseline = rng.uniform(*p.cell_baseline, size=n).astype(np.float32)

    # out-of-focus cells: strongly blurred, dimmer, their own activity
    n_oof = int(round(p.out_of_focus_factor * n))
    oof_centers = place(n_oof, 0.0, field_radius + 10)
    oof = np.zeros((len(oof_centers), h * w), np.float32)
    soma_light = np.pi * np.mean(p.soma_radius) ** 2  # light of an in-focus soma (footprint sum)
    for i, c in enumerate(oof_centers):
        img = np.zeros((h, w))
        cy, cx = int(np.clip(round(c[0]), 0, h - 1)), int(np.clip(round(c[1]), 0, w - 1))
        img[cy, cx] = 1
        # the same light spread by defocus: sigma grows with the distance from focus
        depth_px = rng.uniform(*p.out_of_focus_depth_um) / p.pixel_size_um
        sigma = np.hypot(np.mean(p.soma_radius) / 2 + np.mean(p.scatter_sigma), p.defocus_blur * depth_px)
        oof[i] = (soma_light * gaussian_filter(img, sigma)).ravel()
    oof_S, oof_C, _ = _activity(rng, len(oof_centers), p)
    oof_C += rng.uniform(*p.cell_baseline, size=(len(oof_centers), 1))

    # neuropil: smooth patterns with their own slow dynamics plus population activity
    patterns, traces = [], []
    population = (C.mean(axis=0) if n else np.zeros(T)) / max(np.mean(p.spike_amplitude), 1e-6)
    for _ in range(4):
        pattern = gaussian_filter(rng.standard_normal((h, w)), p.neuropil_scale)
        pattern = (pattern - pattern.min()) / (np.ptp(pattern) + 1e-12)
        patterns.append(0.5 + pattern)
        traces.append(1 + p.neuropil_fluctuation * _smooth_series(rng, T, rng.uniform(1, 4) * p.fps)
                      + 2.0 * population * rng.uniform(0.5, 1.5))
    patterns = np.stack(patterns) / 4 * p.neuropil_level
    traces = np.stack(traces)
    yy, xx = np.mgrid[:h, :w]
    auto = gaussian_filter(rng.standard_normal((h, w)), 30)
    auto = p.autofluorescence * (1 + 0.3 * auto / (np.abs(auto).max() + 1e-12))
    pulse = 1 + 0.03 * np.sin(2 * np.pi * np.arange(T) / p.fps * rng.uniform(4, 8))  # heartbeat in vessels

    # optics and sensor
    r = np.hypot(yy - field_center[0], xx - field_center[1]) / field_radius
    vignette = (1 - p.vignetting * np.clip(r, 0, 1) ** 2) / (1 + np.exp((r - 1) / 0.03)) + 0.02
    bleach = 1 - p.bleach_fraction * (1 - np.exp(-np.arange(T) / (0.4 * T + 1))) / (1 - np.exp(-2.5))

    # motion: rigid drift (mean-reverting) + jumps, smooth non-rigid modes
    drift = np.zeros((T, 2))
    for t in range(1, T):
        drift[t] = 0.995 * drift[t - 1] + rng.normal(0, p.drift_std, 2)
    jumps = np.zeros((T, 2))
    for t in sorted(rng.integers(T // 5, T, size=p.n_jumps).tolist()):
        angle = rng.uniform(0, 2 * np.pi)
        if np.hypot(*jumps[t]) > 0:
            angle = np.arctan2(-jumps[t, 0], -jumps[t, 1]) + rng.uniform(-np.pi / 4, np.pi / 4)
        jumps[t:] += p.jump_size * np.array([np.sin(angle), np.cos(angle)])
    displacement = drift + jumps
    modes = []
    for _ in range(2):
        field = np.stack([gaussian_filter(rng.standard_normal((h, w)), 40) for _ in range(2)])
        modes.append(field / (np.abs(field).max() + 1e-12))
    mode_traces = np.stack([_smooth_series(rng, T, 0.5 * p.fps) for _ in modes]) / 2
    mode_traces = np.clip(mode_traces, -1, 1) * p.nonrigid_amplitude

    return dict(A_sparse=A, A=A.toarray().reshape(n, h, w), C=C, S=S, rates=rates, baseline=baseline,
                centers=centers, transmission=transmission.astype(np.float32), oof=oof, oof_C=oof_C,
                oof_S=oof_S, patterns=patterns.astype(np.float32), neuropil_traces=traces.astype(np.float32),
                autofluorescence=auto.astype(np.float32), pulse=pulse, vignette=vignette.astype(np.float32),
                bleach=bleach, displacement=displacement, shifts=-displacement, modes=np.stack(modes),
                mode_traces=mode_traces, field_center=field_center, field_radius=field_radius,
                density_per_mm3=p.density_per_mm3())


def render_dense_frames(p: DenseSimulationParams, truth: dict, start: int, stop: int) -> np.ndarray:
    """Noisy 8-bit frames start..stop-1 (deterministic for a given chunk start)."""
    import cv2

    h, w = p.height, p.width
    rng = np.random.default_rng([p.seed, 7, start])
    A = truth["A_sparse"]
    cells = A.T @ (truth["C"][:, start:stop] + truth["baseline"][:, None])  # (h*w, t)
    oof = truth["oof"].T @ truth["oof_C"][:, start:stop]
    neuropil = truth["patterns"].reshape(len(truth["patterns"]), -1).T @ truth["neuropil_traces"][:, start:stop]
    transmission = truth["transmission"].ravel()[:, None]
    vessel = 1 - (1 - transmission) * truth["pulse"][None, start:stop]
    scene = (np.asarray(cells) + (oof + neuropil + truth["autofluorescence"].ravel()[:, None]) * vessel)
    scene = scene.T.reshape(-1, h, w).astype(np.float32)
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    out = np.empty((stop - start, h, w), np.uint8)
    for i, t in enumerate(range(start, stop)):
        dy, dx = truth["displacement"][t]
        field = np.tensordot(truth["mode_traces"][:, t], truth["modes"], axes=1)  # (2, h, w)
        # the frame shows the tissue displaced by (dy, dx) + field: sample the tissue at pixel - displacement
        map_y = (yy - dy - field[0]).astype(np.float32)
        map_x = (xx - dx - field[1]).astype(np.float32)
        moved = cv2.remap(scene[i], map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        expected = np.clip(moved * truth["vignette"] * truth["bleach"][t], 0, None)
        frame = rng.poisson(expected / p.gain) * p.gain + p.black_level + rng.normal(0, p.read_noise, (h, w))
        out[i] = np.clip(np.round(frame), 0, 255).astype(np.uint8)
    return out


def simulate_dense_recording(folder: str | Path, params: DenseSimulationParams | None = None) -> dict:
    """Write 0.avi, 1.avi, ... and ``truth.npz`` into ``folder``; return the truth."""
    p = params or DenseSimulationParams()
    truth = make_dense_truth(p)
    keep = ("A", "C", "S", "rates", "baseline", "centers", "displacement", "shifts", "field_center",
            "field_radius", "density_per_mm3", "bleach")
    write_recording(folder, p, truth, render_dense_frames, keep)
    return truth


