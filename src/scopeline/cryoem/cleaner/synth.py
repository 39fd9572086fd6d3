"""Simulated cryo-EM micrographs with exact bad-region masks, for training and testing.

The image is formed at twice the model scale (where a particle box is ~16 px) and
block-averaged down, following the physics of a low-dose exposure:

* projected potential: particles (projections of random compact 3-D densities made of
  Gaussian blobs), amorphous carbon film (thicker, granular) beyond a curved hole edge,
  contamination (thick ice balls, dark, sharp edged), crystalline ice (faceted, bright or
  dark diffraction contrast with bend contours) and ethane droplets (round, thin);
* amplitude: inelastic loss ``exp(-t / lambda)`` through vitreous ice with a thickness
  gradient, carbon and contamination;
* weak-phase contrast transfer with a realistic defocus (0.5-3.5 um, 300 kV, Cs 2.7 mm,
  7 % amplitude contrast) and an envelope: Fresnel fringes appear at every sharp edge;
* per-pixel detector gain variation and Poisson shot noise at a realistic dose.

``mask`` is the area fraction of each model pixel covered by carbon, contamination,
crystalline ice or ethane: 1 = bad region. Particles are dark on a bright background.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft as sfft
from skimage.draw import polygon as draw_polygon

WAVELENGTH_A = 0.0197  # 300 kV electrons
CS_A = 2.7e7  # spherical aberration, 2.7 mm
SIGMA = 0.00065  # interaction constant at 300 kV, rad / (V A)
OVERSAMPLE = 2  # simulation grid is this many times finer than the model grid


@dataclass
class SyntheticMicrograph:
    image: np.ndarray  # float32 (size, size), model scale, particles dark
    mask: np.ndarray  # float32 (size, size), fraction of bad region per pixel
    particles: np.ndarray  # float (n, 2) particle centres x, y at model scale
    box_size: float  # particle box at model scale (px)


def simulate_micrograph(seed: int | np.random.Generator, size: int = 256, sampling: float = 1.0) -> SyntheticMicrograph:
    """One random micrograph at model scale (``size`` x ``size``) with its true mask.

    ``sampling`` (pixels per model pixel) records the same micrograph at another pixel
    size, with the noise that pixel size has: 2 gives the simulation grid itself (half the
    pixel size, ``2 * size`` px, box doubled), 0.5 averages 4 x 4 grid pixels (twice the
    pixel size). ``OVERSAMPLE / sampling`` must be a whole number.
    """
    block = OVERSAMPLE / sampling
    if block < 1 or block != int(block):
        raise ValueError(f"sampling must divide {OVERSAMPLE} into a whole number of grid pixels, got {sampling}")
    block = int(block)
    rng = np.random.default_rng(seed)
    n = size * OVERSAMPLE
    box_model = rng.uniform(13.0, 20.0)  # the box the user would give, at model scale
    particle_diameter = box_model * OVERSAMPLE * rng.uniform(0.45, 0.75)  # fine px
    pixel_a = rng.uniform(150.0, 260.0) / particle_diameter  # fine pixel size (A)

    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    phase = np.zeros((n, n), np.float32)  # radians
    loss = _ice_thickness(rng, xx, yy, n) / rng.uniform(3000.0, 4500.0)  # t / lambda_in
    amplitude = np.ones((n, n), np.float32)  # diffraction contrast of crystals
    bad = np.zeros((n, n), bool)

    centres = _particle_centres(rng, n, particle_diameter)
    phase += _particle_phase(rng, n, centres, particle_diameter)
    phase += rng.normal(0, rng.uniform(0.0, 0.03), (n, n)).astype(np.float32)  # ice texture

    if rng.random() < 0.5:
        carbon = _carbon_region(rng, xx, yy, n)
        thickness = rng.uniform(80.0, 350.0)
        grain = _smooth_noise(rng, n, rng.uniform(1.0, 3.0)) * rng.uniform(0.1, 0.4)
        phase += carbon * SIGMA * rng.uniform(4.0, 6.0) * thickness * (1 + grain)
        loss += carbon * thickness / rng.uniform(1500.0, 2500.0)
        bad |= carbon > 0.5

    for _ in range(rng.poisson(1.0)):
        region, rho = _random_blob(rng, xx, yy, n, _log_uniform(rng, 5.0, 200.0))
        dome = np.sqrt(np.clip(1 - rho**2, 0, 1))
        thickness = rng.uniform(400.0, 6000.0) * (rng.uniform(0.3, 0.7) + (1 - 0.5) * dome)
        loss += region * thickness / rng.uniform(2500.0, 4000.0)
        phase += region * SIGMA * 4.5 * np.minimum(thickness, 1500.0) * 0.3
        bad |= region > 0.5

    for _ in range(rng.poisson(0.6)):
        region = _random_polygon(rng, n, _log_uniform(rng, 8.0, 160.0))
        contrast = rng.uniform(0.45, 0.85) if rng.random() < 0.6 else rng.uniform(1.12, 1.4)
        amplitude *= np.where(region, contrast * _bend_contours(rng, xx, yy), 1.0).astype(np.float32)
        phase += region * rng.uniform(0.1, 0.6)
        bad |= region

    for _ in range(rng.poisson(0.3)):
        region, rho = _random_blob(rng, xx, yy, n, _log_uniform(rng, 10.0, 140.0), roughness=0.03)
        amplitude *= np.where(region, rng.uniform(0.8, 0.95) + 0.05 * rho, 1.0).astype(np.float32)
        phase += region * rng.uniform(0.3, 1.0)
        bad |= region > 0.5

    if rng.random() < 0.04:  # crystalline ice everywhere: the whole field is bad
        amplitude *= 1 + rng.uniform(0.05, 0.2) * _smooth_noise(rng, n, rng.uniform(6, 20))
        bad[:] = True

    contrast = _apply_ctf(rng, phase, pixel_a)
    intensity = np.exp(-loss) * amplitude * np.clip(1.0 - 2.0 * contrast, 0.05, None)
    dose = rng.uniform(15.0, 80.0) * pixel_a**2 / rng.uniform(1.0, 4.0)  # e-/px after DQE
    gain = 1 + rng.normal(0, rng.uniform(0.0, 0.05), (n, n))
    counts = rng.poisson(np.clip(intensity * gain * dose, 0, None)).astype(np.float32)

    return SyntheticMicrograph(
        image=_block_mean(counts, block),
        mask=_block_mean(bad.astype(np.float32), block),
        particles=centres / block,
        box_size=box_model * sampling,
    )


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def _block_mean(image: np.ndarray, factor: int) -> np.ndarray:
    n0, n1 = image.shape[0] // factor, image.shape[1] // factor
    return image[: n0 * factor, : n1 * factor].reshape(n0, factor, n1, factor).mean(axis=(1, 3)).astype(np.float32)


def _smooth_noise(rng: np.random.Generator, n: int, sigma: float) -> np.ndarray:
    """Zero-mean unit-variance Gaussian random field with correlation length ``sigma``."""
    k2 = _k_squared(n, 1.0)
    white = rng.standard_normal(size=(n, n), dtype=np.float32)
    field = sfft.irfft2(sfft.rfft2(white) * np.exp(-2 * (np.pi * sigma) ** 2 * k2), s=(n, n))
    return ((field - field.mean()) / (field.std() + 1e-12)).astype(np.float32)


def _ice_thickness(rng: np.random.Generator, xx: np.ndarray, yy: np.ndarray, n: int) -> np.ndarray:
    """Vitreous ice thickness (A): a base, a gradient, gentle undulation."""
    base = rng.uniform(150.0, 900.0)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * (xx - n / 2) + np.sin(angle) * (yy - n / 2)) / n
    wave = _smooth_noise(rng, n, n / rng.uniform(3, 10))
    return base * (1 + rng.uniform(0, 0.8) * ramp + rng.uniform(0, 0.15) * wave)


def _particle_centres(rng: np.random.Generator, n: int, diameter: float) -> np.ndarray:
    """Random particle centres (x, y) keeping them roughly one diameter apart."""
    crowding = rng.uniform(0.0, 0.5)
    wanted = int(crowding * n * n / (diameter**2))
    points = rng.uniform(0, n, size=(wanted * 2 + 1, 2))
    cell = diameter * 0.9
    taken: dict[tuple[int, int], np.ndarray] = {}
    kept = []
    for p in points:
        key = (int(p[0] // cell), int(p[1] // cell))
        near = [taken.get((key[0] + i, key[1] + j)) for i in (-1, 0, 1) for j in (-1, 0, 1)]
        if any(q is not None and np.hypot(*(q - p)) < cell for q in near):
            continue
        taken[key] = p
        kept.append(p)
        if len(kept) >= wanted:
            break
    return np.array(kept, dtype=float).reshape(-1, 2)


def _particle_phase(rng: np.random.Generator, n: int, centres: np.ndarray, diameter: float) -> np.ndarray:
    """Phase map of particles: random compact 3-D Gaussian-blob densities, projected."""
    phase = np.zeros((n, n), np.float32)
    if len(centres) == 0:
        return phase
    half = int(np.ceil(diameter * 0.75))
    g = np.arange(-half, half + 1, dtype=np.float32)
    peak = rng.uniform(0.1, 0.6)  # projected phase at the particle centre (rad)
    blobs = rng.normal(size=(rng.integers(4, 25), 3)) * diameter * rng.uniform(0.12, 0.22)
    widths = rng.uniform(0.08, 0.18, len(blobs)) * diameter
    templates = []
    for _ in range(12):  # the same 3-D density seen in different orientations
        q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        xy = blobs @ q.T
        t = np.zeros((g.size, g.size), np.float32)
        for (bx, by, _), w in zip(xy, widths):
            t += np.exp(-((g[None, :] - bx) ** 2 + (g[:, None] - by) ** 2) / (2 * w * w))
        templates.append(t * (peak / max(t.max(), 1e-6)))
    for i, (x, y) in enumerate(centres):
        _add_patch(phase, templates[i % len(templates)], int(round(y)), int(round(x)))
    return phase


def _add_patch(canvas: np.ndarray, patch: np.ndarray, cy: int, cx: int) -> None:
    h = patch.shape[0] // 2
    y0, x0 = cy - h, cx - h
    sy0, sx0 = max(0, -y0), max(0, -x0)
    y1, x1 = min(canvas.shape[0], y0 + patch.shape[0]), min(canvas.shape[1], x0 + patch.shape[1])
    if y1 <= max(y0, 0) or x1 <= max(x0, 0):
        return
    canvas[max(y0, 0) : y1, max(x0, 0) : x1] += patch[sy0 : sy0 + y1 - max(y0, 0), sx0 : sx0 + x1 - max(x0, 0)]


def _carbon_region(rng: np.random.Generator, xx: np.ndarray, yy: np.ndarray, n: int) -> np.ndarray:
    """1 on carbon film, 0 over the hole: the hole edge is an arc crossing the field."""
    if rng.random() < 0.06:
        return np.ones_like(xx)
    radius = n * rng.uniform(0.4, 4.0)
    angle = rng.uniform(0, 2 * np.pi)
    offset = rng.uniform(-0.35, 0.35) * n  # where the edge crosses, relative to the centre
    cx = n / 2 + np.cos(angle) * (radius + offset)
    cy = n / 2 + np.sin(angle) * (radius + offset)
    theta = np.arctan2(yy - cy, xx - cx)
    wobble = sum(rng.normal(0, 0.004) * np.cos(k * theta + rng.uniform(0, 6.3)) for k in range(2, 12))
    return (np.hypot(xx - cx, yy - cy) > radius * (1 + wobble)).astype(np.float32)


def _random_blob(
    rng: np.random.Generator, xx: np.ndarray, yy: np.ndarray, n: int, radius: float, roughness: float = 0.12
) -> tuple[np.ndarray, np.ndarray]:
    """A star-shaped blob with a sharp edge; returns (inside as float, normalised radius)."""
    cx, cy = rng.uniform(-0.1 * n, 1.1 * n, 2)
    coefs = [(rng.normal(0, roughness / k), rng.uniform(0, 2 * np.pi)) for k in range(2, 9)]
    stretch, tilt = rng.uniform(0, 0.4), rng.uniform(0, np.pi)
    reach = radius * (1.5 + sum(abs(c) for c, _ in coefs)) * (1 + stretch)
    rho = np.full(xx.shape, np.inf, np.float32)  # only the bounding box is computed
    rows = slice(max(0, int(cy - reach)), max(0, min(n, int(cy + reach) + 1)))
    cols = slice(max(0, int(cx - reach)), max(0, min(n, int(cx + reach) + 1)))
    x, y = xx[rows, cols] - cx, yy[rows, cols] - cy
    theta = np.arctan2(y, x)
    edge = 1 + sum(c * np.cos(k * theta + p) for k, (c, p) in zip(range(2, 9), coefs))
    edge *= 1 + stretch * np.cos(2 * (theta - tilt))  # elongation
    rho[rows, cols] = np.hypot(x, y) / (radius * np.clip(edge, 0.3, None))
    return (rho < 1).astype(np.float32), rho


def _random_polygon(rng: np.random.Generator, n: int, radius: float) -> np.ndarray:
    """A faceted crystal: convex-ish polygon of 3-8 vertices, hexagons favoured."""
    k = 6 if rng.random() < 0.5 else int(rng.integers(3, 9))
    cx, cy = rng.uniform(-0.05 * n, 1.05 * n, 2)
    angles = np.sort(np.arange(k) * 2 * np.pi / k + rng.uniform(0, 2 * np.pi) + rng.normal(0, 0.15, k))
    radii = radius * rng.uniform(0.7, 1.15, k)
    rows = cy + radii * np.sin(angles)
    cols = cx + radii * np.cos(angles) * rng.uniform(0.6, 1.0)
    mask = np.zeros((n, n), bool)
    rr, cc = draw_polygon(rows, cols, shape=(n, n))
    mask[rr, cc] = True
    return mask


def _bend_contours(rng: np.random.Generator, xx: np.ndarray, yy: np.ndarray) -> np.ndarray:
    angle = rng.uniform(0, np.pi)
    period = rng.uniform(10.0, 80.0)
    phase = (np.cos(angle) * xx + np.sin(angle) * yy) * 2 * np.pi / period
    return 1 + rng.uniform(0, 0.15) * np.sin(phase)


def ctf_1d(k: np.ndarray, defocus_a: float, amplitude_contrast: float = 0.07) -> np.ndarray:
    """Weak-phase CTF at spatial frequency ``k`` (1/A); positive defocus = underfocus."""
    chi = np.pi * WAVELENGTH_A * defocus_a * k**2 - 0.5 * np.pi * CS_A * WAVELENGTH_A**3 * k**4
    return np.sqrt(1 - amplitude_contrast**2) * np.sin(chi) + amplitude_contrast * np.cos(chi)


def _apply_ctf(rng: np.random.Generator, phase: np.ndarray, pixel_a: float) -> np.ndarray:
    """Image contrast of a weak phase object: IFFT(CTF * envelope * FFT(phase))."""
    n = phase.shape[0]
    ky = np.fft.fftfreq(n, d=pixel_a).astype(np.float32)[:, None]
    kx = np.fft.rfftfreq(n, d=pixel_a).astype(np.float32)[None, :]
    k2 = kx**2 + ky**2
    astig = rng.uniform(0, 0.05)
    az = np.arctan2(ky, kx) - rng.uniform(0, np.pi)
    defocus = rng.uniform(5000.0, 35000.0) * (1 + astig * np.cos(2 * az))
    ctf = ctf_1d(np.sqrt(k2), defocus)
    envelope = np.exp(-rng.uniform(50.0, 300.0) / 4 * k2)
    transfer = (ctf * envelope).astype(np.complex64)
    transfer[0, 0] = 0.07  # amplitude contrast carries the mean phase
    return sfft.irfft2(sfft.rfft2(phase) * transfer, s=phase.shape).astype(np.float32)


def _k_squared(n: int, pixel: float) -> np.ndarray:
    ky = np.fft.fftfreq(n, d=pixel).astype(np.float32)[:, None]
    kx = np.fft.rfftfreq(n, d=pixel).astype(np.float32)[None, :]
    return kx**2 + ky**2


def random_picks(
    rng: np.random.Generator, micrograph: SyntheticMicrograph, n_junk: int = 40
) -> np.ndarray:
    """Picks as a generic picker makes them: every particle plus junk picks anywhere."""
    size = micrograph.image.shape[0]
    junk = rng.uniform(0, size, size=(n_junk, 2))
    return np.concatenate([micrograph.particles, junk]) if len(micrograph.particles) else junk
