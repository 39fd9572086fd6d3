"""Wireless-link corruption of miniscope frames, with labels (pure functions).

The radio link of a wireless miniscope corrupts whole frames. :func:`corrupt_frames`
reproduces the kinds seen in real recordings, with more variety than the detector
(:mod:`scopeline.miniscope.frame_qc`) assumes:

``noise_band``
    full-width bands of rows (3 rows to a third of the frame, anywhere) replaced by noise;
``noise_block``
    partial-width rectangles (5-33 % of the height, 15-70 % of the width, anywhere) of noise;
``dark_block``
    rectangles (10-50 % of the height, 20-100 % of the width) blacked out;
``dark_most``
    60-95 % of the frame blacked out (the frame cut off after some rows, or one big block);
``mixed``
    a noise band followed by blacked-out rows, or a noise block plus a dark block.

Noise is one of: salt-and-pepper (black / white pixels at a density of 50-100 %, the rest
of the pixels kept), uniform full-range noise, horizontal black-and-white runs of 1-3 px,
or *mid-grey-contrast* noise (uniform over a range of 48-128 grey levels placed anywhere
in the 8-bit range). Blacked-out pixels are not 0: a sensor offset of 0-12 grey levels
plus Gaussian noise (sd 0.3-2), rounded. Dark regions are centred in the middle 60 % of
the frame (where the imaging field of a miniscope lies; a blackout of the already dark
margin outside the field changes nothing and is not a broken frame). Corruption comes in
events of 1-3 consecutive frames (70 / 20 / 10 %), each frame corrupted independently.

:func:`render_scene` makes the clean frames to corrupt: the recordings of
:mod:`scopeline.miniscope.simulate` (motion, vignetting, dark margin, neuropil, 8-bit
noise), including variants with strong motion (drift and 4 jumps), bright transients, brightness
changes (strongly fluctuating background, a 25 % light-source step halfway, 30 %
bleaching) and a dim field.
"""

from __future__ import annotations

import numpy as np

KINDS = ("noise_band", "noise_block", "dark_block", "dark_most", "mixed")
NOISE_STYLES = ("salt_pepper", "uniform", "runs", "mid_grey")

SCENES = {
    "standard": {},
    "strong_motion": {"drift_std": 0.15, "jump_size": 12.0, "jumps": 4},
    "bright_transients": {"spike_amplitude": (40.0, 90.0), "spike_rates": (0.5, 2.0, 4.0)},
    "brightness_changes": {"background_fluctuation": 0.4, "brightness_step": 1.25, "bleaching": 0.3},
    "dim": {"background_level": 25.0, "neuropil_level": 5.0, "spike_amplitude": (4.0, 10.0),
            "neuron_baseline": (2.0, 6.0), "drift_std": 0.1},
}
"""Variants of :class:`scopeline.miniscope.simulate.SimulationParams` for clean scenes."""


def render_scene(name: str, n_frames: int, size: int = 128, seed: int = 0, fps: float = 20.0) -> tuple[np.ndarray, dict]:
    """Clean uint8 frames (n_frames, size, size) of the scene ``name`` (see ``SCENES``) and
    the simulator's truth (``shifts``, ``jump_times``, ...)."""
    from .simulate import SimulationParams, make_truth, render_frames

    extra = dict(SCENES[name])
    jumps = extra.pop("jumps", None)
    step, bleaching = extra.pop("brightness_step", 1.0), extra.pop("bleaching", 0.0)
    if jumps:  # evenly spread sudden jumps
        extra["jump_times"] = tuple(int(t) for t in np.linspace(0, n_frames, jumps + 2)[1:-1])
    extra["jump_size"] = min(extra.get("jump_size", 12.0), size / 10)
    p = SimulationParams(height=size, width=size, n_frames=n_frames, n_neurons=max(4, size * size // 1000),
                         fps=fps, seed=seed, **extra)
    truth = make_truth(p)
    frames = render_frames(p, truth, 0, n_frames)
    if step != 1.0 or bleaching:  # light-source step at the middle frame, exponential bleaching
        gain = np.exp(np.log(1 - bleaching) * np.arange(n_frames) / max(n_frames - 1, 1)) if bleaching else \
            np.ones(n_frames)
        gain[n_frames // 2 :] *= step
        frames = np.clip(np.round(frames * gain[:, None, None]), 0, 255).astype(np.uint8)
    return frames, truth


def corrupt_frames(frames: np.ndarray, rng: np.random.Generator, fraction: float = 0.05,
                   kinds: tuple[str, ...] = KINDS) -> tuple[np.ndarray, np.ndarray]:
    """Corrupt about ``fraction`` of ``frames`` (t, h, w) like a wireless link does.

    Parameters
    ----------
    frames : ndarray
        Clean frames (integer or float; the range is the dtype's for integers, else
        0..max of the frames).
    rng : numpy.random.Generator
    fraction : float
        Share of the frames to corrupt (events of 1-3 consecutive frames).
    kinds : tuple of str
        Kinds to draw from (see the module docstring), uniformly per event.

    Returns
    -------
    corrupted : ndarray
        A copy of ``frames`` with the corrupted frames replaced.
    labels : ndarray of str
        (t,) the kind of each corrupted frame, "" for clean frames.
    """
    out = np.array(frames, copy=True)
    t = len(out)
    labels = np.full(t, "", dtype="<U12")
    top = float(np.iinfo(out.dtype).max) if np.issubdtype(out.dtype, np.integer) else float(out.max())
    target = int(round(fraction * t))
    taken = np.zeros(t, bool)
    attempts = 0
    while taken.sum() < target and attempts < 100 * max(target, 1):
        attempts += 1
        length = int(rng.choice([1, 2, 3], p=[0.7, 0.2, 0.1]))
        start = int(rng.integers(0, max(t - length + 1, 1)))
        span = slice(max(start - 1, 0), min(start + length + 1, t))  # events do not touch
        if taken[span].any():
            continue
        kind = str(rng.choice(kinds))
        for f in range(start, min(start + length, t)):
            out[f] = corrupt_one(out[f], kind, rng, top)
            labels[f] = kind
            taken[f] = True
    return out, labels


def corrupt_one(frame: np.ndarray, kind: str, rng: np.random.Generator, top: float = 255.0) -> np.ndarray:
    """One frame (h, w) corrupted by ``kind`` (a copy)."""
    frame = np.array(frame, copy=True)
    h, w = frame.shape
    if kind == "noise_band":
        y0, y1 = _band(h, rng, 3, max(3, h // 3))
        _noise(frame, (slice(y0, y1), slice(0, w)), rng, top)
    elif kind == "noise_block":
        _noise(frame, _rect(h, w, rng, (0.05, 0.33), (0.15, 0.7), central=False), rng, top)
    elif kind == "dark_block":
        _dark(frame, _rect(h, w, rng, (0.1, 0.5), (0.2, 1.0), central=True), rng)
    elif kind == "dark_most":
        if rng.uniform() < 0.5:  # transmission stopped after some rows
            y0 = int(round(rng.uniform(0.05, 0.4) * h))
            _dark(frame, (slice(y0, h), slice(0, w)), rng)
        else:
            fy, fx = rng.uniform(0.78, 0.97, size=2)
            hh, ww = int(round(fy * h)), int(round(fx * w))
            y0, x0 = int(rng.integers(0, h - hh + 1)), int(rng.integers(0, w - ww + 1))
            _dark(frame, (slice(y0, y0 + hh), slice(x0, x0 + ww)), rng)
    elif kind == "mixed":
        if rng.uniform() < 0.5:  # garbled rows, then nothing
            y0, y1 = _band(h, rng, 3, max(3, h // 4), stop=int(0.6 * h))
            _noise(frame, (slice(y0, y1), slice(0, w)), rng, top)
            _dark(frame, (slice(y1, h), slice(0, w)), rng)
        else:
            _noise(frame, _rect(h, w, rng, (0.05, 0.25), (0.15, 0.6), central=False), rng, top)
            _dark(frame, _rect(h, w, rng, (0.1, 0.4), (0.2, 0.8), central=True), rng)
    else:
        raise ValueError(f"unknown corruption kind {kind!r}; choose one of {', '.join(KINDS)}")
    return frame


def _band(h: int, rng, lo: int, hi: int, stop: int | None = None) -> tuple[int, int]:
    height = int(rng.integers(min(lo, h), min(hi, h) + 1))
    stop = h if stop is None else max(stop, height)
    y0 = int(rng.integers(0, max(stop - height, 0) + 1))
    return y0, y0 + height


def _rect(h: int, w: int, rng, fh: tuple[float, float], fw: tuple[float, float], central: bool):
    hh = max(3, int(round(rng.uniform(*fh) * h)))
    ww = max(3, int(round(rng.uniform(*fw) * w)))
    if central:  # centre inside the middle 60 % of the frame
        cy, cx = rng.uniform(0.2, 0.8) * h, rng.uniform(0.2, 0.8) * w
        y0, x0 = int(np.clip(round(cy - hh / 2), 0, h - hh)), int(np.clip(round(cx - ww / 2), 0, w - ww))
    else:
        y0, x0 = int(rng.integers(0, h - hh + 1)), int(rng.integers(0, w - ww + 1))
    return slice(y0, y0 + hh), slice(x0, x0 + ww)


def _noise(frame: np.ndarray, where, rng, top: float) -> None:
    region = frame[where]
    shape = region.shape
    style = str(rng.choice(NOISE_STYLES))
    if style == "salt_pepper":
        density = rng.uniform(0.5, 1.0)
        hit = rng.uniform(size=shape) < density
        values = np.where(rng.uniform(size=shape) < 0.5, 0.0, top)
        new = np.where(hit, values, region)
    elif style == "uniform":
        new = rng.uniform(0, top, size=shape)
    elif style == "runs":  # black / white runs of 1-3 px along the rows
        run = int(rng.integers(1, 4))
        cols = -(-shape[1] // run)
        values = np.where(rng.uniform(size=(shape[0], cols)) < 0.5, 0.0, top)
        new = np.repeat(values, run, axis=1)[:, : shape[1]]
    else:  # mid-grey contrast
        width = rng.uniform(48, 128) * top / 255
        low = rng.uniform(0, top - width)
        new = rng.uniform(low, low + width, size=shape)
    frame[where] = _cast(new, frame.dtype)


def _dark(frame: np.ndarray, where, rng) -> None:
    shape = frame[where].shape
    offset, sd = rng.uniform(0, 12), rng.uniform(0.3, 2.0)
    frame[where] = _cast(np.clip(offset + rng.normal(0, sd, size=shape), 0, None), frame.dtype)


def _cast(values: np.ndarray, dtype) -> np.ndarray:
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.clip(np.round(values), info.min, info.max).astype(dtype)
    return values.astype(dtype)


def corrupt_recording(folder, seed: int = 0, fraction: float = 0.05, kinds: tuple[str, ...] = KINDS,
                      fps: float = 30.0) -> np.ndarray:
    """Corrupt the AVI files of a simulated recording in ``folder`` (0.avi, 1.avi, ... in
    natural order) in place with :func:`corrupt_frames` and save the labels (one per
    frame over all files, "" = clean) to ``corruption.npz``; return the labels."""
    from pathlib import Path

    from ..io.atomic import atomic_path
    from ..io.video import find_videos, probe_video, read_frames, write_avi

    files = find_videos(Path(folder))
    counts = [probe_video(f).n_frames for f in files]
    frames = np.concatenate([read_frames(f, 0, n) for f, n in zip(files, counts)])
    corrupted, labels = corrupt_frames(frames, np.random.default_rng(seed), fraction, kinds)
    for f, a, b in zip(files, np.cumsum([0] + counts[:-1]), np.cumsum(counts)):
        write_avi(f, corrupted[a:b], fps=fps)
    with atomic_path(Path(folder) / "corruption.npz") as tmp:
        np.savez_compressed(tmp, labels=labels)
    return labels
