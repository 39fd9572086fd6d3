"""Ground-truth miniscope recordings for tests, benchmarks and the demo.

The scene (tissue coordinates): neurons with irregular elliptical footprints (radius 4-8
px) and a baseline brightness, GCaMP-like AR(2) calcium from sparse spikes at several
activity levels, neuropil and a strong smooth 1-photon background that fluctuate in time.
Each frame is displaced rigidly (slow drift plus sudden jumps), seen through fixed
vignetting of the imaging field, with Poisson (shot) and read noise, quantised to 8 bit;
optionally some frames are line-split (rows wrapped to the right, bright content in the
left edge). Frames are written in files of ``frames_per_file`` (0.avi, 1.avi, ...) like the
acquisition software, and the truth to ``truth.npz``:

``A`` (n, h, w) footprints (max 1, tissue coordinates), ``C`` (n, T) calcium (grey levels
at the field centre), ``S`` (n, T) spikes, ``shifts`` (T, 2) the (dy, dx) shift that
registers frame t onto tissue coordinates (= minus its displacement), ``line_split_frames``,
``centers`` (n, 2), ``field_center``, ``field_radius``, ``g`` (AR(2) coefficients).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

from ..io.atomic import atomic_path
from ..io.video import write_avi


class SimulationParams(BaseModel):
    height: int = Field(200, ge=32)
    width: int = Field(200, ge=32)
    n_frames: int = Field(1000, ge=1)
    n_neurons: int = Field(40, ge=0)
    fps: float = 30.0
    frames_per_file: int = Field(500, ge=1)
    seed: int = 0
    radius_range: tuple[float, float] = (4.0, 8.0)
    min_separation: float = Field(10.0, description="smallest distance between neuron centres (px)")
    spike_rates: tuple[float, ...] = Field((0.3, 1.0, 3.0), description="activity levels (spikes/s)")
    tau_rise: float = 0.08
    tau_decay: float = 0.6
    spike_amplitude: tuple[float, float] = (8.0, 16.0)
    neuron_baseline: tuple[float, float] = (5.0, 15.0)
    background_level: float = 90.0
    background_fluctuation: float = 0.1
    neuropil_level: float = 15.0
    vignetting: float = 0.6
    field_radius_fraction: float = 0.46
    drift_std: float = Field(0.03, description="random-walk step of the drift (px per frame)")
    jump_times: tuple[int, ...] | None = Field(None, description="frames where jumps happen (None: 2 random)")
    jump_size: float = 12.0
    gain: float = Field(0.25, description="grey levels per photon")
    read_noise: float = 1.5
    line_split_fraction: float = Field(0.0, ge=0, le=0.5)


def ar2_coefficients(tau_rise: float, tau_decay: float, fps: float) -> tuple[float, float]:
    """g1, g2 of c_t = g1 c_{t-1} + g2 c_{t-2} + s_t for a double-exponential kernel."""
    d, r = np.exp(-1.0 / (tau_decay * fps)), np.exp(-1.0 / (tau_rise * fps))
    return float(d + r), float(-d * r)


def calcium_from_spikes(spikes: np.ndarray, g: tuple[float, float]) -> np.ndarray:
    """AR(2) filter of spike trains (units, T), normalised so one spike peaks at 1."""
    from scipy.signal import lfilter

    kernel = lfilter([1.0], [1.0, -g[0], -g[1]], np.r_[1.0, np.zeros(200)])
    return lfilter([1.0 / kernel.max()], [1.0, -g[0], -g[1]], spikes, axis=-1)


def footprint(shape: tuple[int, int], center, radii, angle: float, rng) -> np.ndarray:
    """Irregular elliptical footprint with soft edges, max 1."""
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(np.float64)
    dy, dx = yy - center[0], xx - center[1]
    cos, sin = np.cos(angle), np.sin(angle)
    u, v = cos * dx + sin * dy, -sin * dx + cos * dy
    theta = np.arctan2(v, u)
    wobble = 1 + sum(rng.uniform(0, 0.12) * np.cos(k * theta + rng.uniform(0, 2 * np.pi)) for k in (2, 3, 5))
    rho = np.sqrt((u / radii[0]) ** 2 + (v / radii[1]) ** 2) / wobble
    return np.exp(-0.5 * (rho / 0.6) ** 4).astype(np.float32) * (rho < 1.6)


def _smooth_series(rng, n: int, length: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter1d

    series = gaussian_filter1d(rng.standard_normal(n + 6 * int(length) + 2), length, mode="wrap")[: n]
    series = series - series.mean()
    return series / (series.std() + 1e-12)


def make_truth(p: SimulationParams) -> dict:
    """Everything except the noisy frames: footprints, traces, background, motion."""
    rng = np.random.default_rng(p.seed)
    h, w, T = p.height, p.width, p.n_frames
    field_center = np.array([h / 2 + rng.uniform(-3, 3), w / 2 + rng.uniform(-3, 3)])
    field_radius = p.field_radius_fraction * min(h, w)
    margin = p.jump_size + 6 + max(p.radius_range)

    centers: list[np.ndarray] = []
    for _ in range(200 * max(p.n_neurons, 1)):
        if len(centers) == p.n_neurons:
            break
        r, a = (field_radius - margin) * np.sqrt(rng.uniform()), rng.uniform(0, 2 * np.pi)
        c = field_center + r * np.array([np.sin(a), np.cos(a)])
        if all(np.hypot(*(c - o)) >= p.min_separation for o in centers):
            centers.append(c)
    n = len(centers)
    A = np.stack([footprint((h, w), c, rng.uniform(*p.radius_range, size=2), rng.uniform(0, np.pi), rng)
                  for c in centers]) if n else np.zeros((0, h, w), np.float32)

    rates = np.array(p.spike_rates)[np.arange(n) % len(p.spike_rates)] / p.fps
    S = (rng.uniform(size=(n, T)) < rates[:, None]).astype(np.float32)
    g = ar2_coefficients(p.tau_rise, p.tau_decay, p.fps)
    C = calcium_from_spikes(S, g) * rng.uniform(*p.spike_amplitude, size=(n, 1))
    baseline = rng.uniform(*p.neuron_baseline, size=n)

    yy, xx = np.mgrid[:h, :w]
    blobs = []
    for _ in range(3):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        s = rng.uniform(0.3, 0.6) * min(h, w)
        blobs.append(np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s * s)))
    blob_traces = 1 + p.background_fluctuation * np.stack([_smooth_series(rng, T, 3 * p.fps) for _ in blobs])
    from scipy.ndimage import gaussian_filter

    neuropil = gaussian_filter(rng.standard_normal((h, w)), 12)
    neuropil = (neuropil - neuropil.min()) / (np.ptp(neuropil) + 1e-12)
    neuropil_trace = 1 + 0.3 * _smooth_series(rng, T, 0.5 * p.fps)

    drift = np.cumsum(rng.normal(0, p.drift_std, size=(T, 2)), axis=0)
    drift -= drift[0]
    jumps = np.zeros((T, 2))
    jump_times = p.jump_times if p.jump_times is not None else sorted(rng.integers(T // 5, T, size=2).tolist())
    for t in jump_times:
        if 0 < t < T:
            # a jump in a random direction, but back towards the start when already
            # displaced, so the field of view stays bounded like a scope that settles
            angle = rng.uniform(0, 2 * np.pi)
            if np.hypot(*jumps[t]) > 0:
                angle = np.arctan2(-jumps[t, 0], -jumps[t, 1]) + rng.uniform(-np.pi / 4, np.pi / 4)
            jumps[t:] += p.jump_size * np.array([np.sin(angle), np.cos(angle)])
    displacement = drift + jumps

    r = np.hypot(yy - field_center[0], xx - field_center[1]) / field_radius
    vignette = (1 - p.vignetting * r**2) * (1 / (1 + np.exp((r - 1) / 0.03)))
    vignette = np.clip(vignette, 0, None) + 0.03

    n_split = int(round(p.line_split_fraction * T))
    split_frames = np.sort(rng.choice(np.arange(1, T), size=n_split, replace=False)) if n_split else np.zeros(0, int)
    split_offsets = rng.integers(w // 5, w // 3, size=n_split)
    return dict(A=A.astype(np.float32), C=C.astype(np.float32), S=S, baseline=baseline.astype(np.float32),
                centers=np.array(centers).reshape(n, 2), g=np.array(g), blobs=np.stack(blobs).astype(np.float32),
                blob_traces=blob_traces.astype(np.float32), neuropil=neuropil.astype(np.float32),
                neuropil_trace=neuropil_trace.astype(np.float32), displacement=displacement,
                shifts=-displacement, vignette=vignette.astype(np.float32), field_center=field_center,
                field_radius=field_radius, line_split_frames=split_frames, line_split_offsets=split_offsets,
                jump_times=np.array(jump_times))


def render_frames(p: SimulationParams, truth: dict, start: int, stop: int) -> np.ndarray:
    """Noisy 8-bit frames start..stop-1 (deterministic per frame range chunk)."""
    import cv2

    h, w = p.height, p.width
    rng = np.random.default_rng([p.seed, start])
    n = truth["A"].shape[0]
    A2 = truth["A"].reshape(n, -1)
    activity = truth["C"][:, start:stop] + truth["baseline"][:, None]
    neurons = (activity.T @ A2).reshape(-1, h, w) if n else np.zeros((stop - start, h, w), np.float32)
    split = dict(zip(truth["line_split_frames"].tolist(), truth["line_split_offsets"].tolist()))
    out = np.empty((stop - start, h, w), np.uint8)
    for i, t in enumerate(range(start, stop)):
        scene = (p.background_level * np.tensordot(truth["blob_traces"][:, t], truth["blobs"], axes=1)
                 + p.neuropil_level * truth["neuropil_trace"][t] * truth["neuropil"] + neurons[i])
        dy, dx = truth["displacement"][t]
        moved = cv2.warpAffine(scene.astype(np.float32), np.float32([[1, 0, dx], [0, 1, dy]]), (w, h),
                               flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        expected = np.clip(moved * truth["vignette"], 0, None)
        photons = rng.poisson(expected / p.gain)
        frame = photons * p.gain + rng.normal(0, p.read_noise, size=(h, w))
        frame = np.clip(np.round(frame), 0, 255).astype(np.uint8)
        if t in split:
            frame = np.roll(frame, split[t], axis=1)
        out[i] = frame
    return out


def simulate_recording(folder: str | Path, params: SimulationParams | None = None) -> dict:
    """Write 0.avi, 1.avi, ... and truth.npz into ``folder``; return the truth."""
    p = params or SimulationParams()
    truth = make_truth(p)
    keep = [k for k in truth if k not in ("blobs", "neuropil")]
    write_recording(folder, p, truth, render_frames, keep)
    return truth


def write_recording(folder: str | Path, p: BaseModel, truth: dict, render, keep) -> None:
    """Write a simulated recording: ``render(p, truth, start, stop)`` frames as AVI files of
    ``p.frames_per_file`` frames (0.avi, 1.avi, ... at ``p.fps``), rendered 100 frames at a
    time (memory bounded by that, not by the length), and the ``keep`` entries of ``truth``
    with the parameters as JSON in ``truth.npz`` (atomic)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)

    def chunks(start, stop, size=100):
        for a in range(start, stop, size):
            yield from render(p, truth, a, min(a + size, stop))

    for k, start in enumerate(range(0, p.n_frames, p.frames_per_file)):
        write_avi(folder / f"{k}.avi", chunks(start, min(start + p.frames_per_file, p.n_frames)), fps=p.fps)
    with atomic_path(folder / "truth.npz") as tmp:
        np.savez_compressed(tmp, **{k: truth[k] for k in keep}, params=np.array(p.model_dump_json()))
