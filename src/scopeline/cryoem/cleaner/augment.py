"""Training windows from real labelled micrographs: scale, rotation, look and pasted defects.

All functions are pure given a ``numpy`` random generator. A window is cut from the
full-resolution micrograph, area-averaged to the model scale (box ~16 px) times a random
zoom, rotated, given pasted simulated defects (clean micrographs only) and a random "look"
(contrast, gamma, blur, noise, CLAHE, 8-bit quantisation, JPEG), so that the network
meets raw float, 8-bit and denoised / contrast-equalised micrographs at any sampling.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from scopeline.cryoem.cleaner.preprocess import MODEL_BOX_PX
from scopeline.cryoem.cleaner.realdata import BAD, IGNORE, Labelled


@dataclass
class Window:
    """A real micrograph reduced so that its box is ``STORED_BOX_PX`` (to cut windows fast):
    image, bad-area fraction and ignored-area fraction per pixel (float32)."""

    name: str
    image: np.ndarray
    bad: np.ndarray
    ignore: np.ndarray
    box_size: float
    clean: bool
    bad_pixels: np.ndarray  # (row, col) of bad pixels on a coarse grid


STORED_BOX_PX = 2 * MODEL_BOX_PX  # room for zoom up to 2x without upsampling


def reduce(item: Labelled) -> Window:
    """Area-average a :class:`Labelled` so its box is ``STORED_BOX_PX`` pixels."""
    factor = max(item.box_size / STORED_BOX_PX, 1.0)
    h, w = item.image.shape
    size = (max(1, int(round(w / factor))), max(1, int(round(h / factor))))
    shrink = lambda a: cv2.resize(np.asarray(a, np.float32), size, interpolation=cv2.INTER_AREA)  # noqa: E731
    bad = shrink(item.target == BAD)
    rows, cols = np.nonzero(bad[::4, ::4] > 0.5)
    return Window(item.name, shrink(item.image), bad, shrink(item.target == IGNORE), item.box_size / factor,
                  item.clean, np.stack([rows * 4, cols * 4], axis=1))


def sample_window(
    rng: np.random.Generator,
    item: Window,
    size: int = 256,
    zoom: tuple[float, float] = (0.5, 2.0),
    bad_centre: float = 0.5,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image float32, bad fraction, weight) of a ``size`` window at model scale x zoom.

    ``zoom`` > 1 shows particles larger than 16 px boxes (a box given too small). With
    probability ``bad_centre`` the window is centred on a bad pixel (when there is one).
    Weight is 0 where more than half of a model pixel is ``IGNORE`` or off the image.
    """
    z = float(np.exp(rng.uniform(np.log(zoom[0]), np.log(zoom[1]))))
    factor = item.box_size / MODEL_BOX_PX / z  # stored px per model px
    height, width = item.image.shape
    side = size * factor
    bad = item.bad_pixels if rng.random() < bad_centre else np.zeros((0, 2))
    if len(bad):
        cy, cx = bad[rng.integers(len(bad))] + rng.uniform(-side / 4, side / 4, 2)
    else:
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
    y0 = int(np.clip(round(cy - side / 2), 0, max(0, height - side)))
    x0 = int(np.clip(round(cx - side / 2), 0, max(0, width - side)))
    y1, x1 = min(height, int(round(y0 + side))), min(width, int(round(x0 + side)))
    out_h, out_w = max(1, int(round((y1 - y0) / factor))), max(1, int(round((x1 - x0) / factor)))
    method = cv2.INTER_AREA if factor > 1 else cv2.INTER_LINEAR
    cut = lambda a: cv2.resize(a[y0:y1, x0:x1], (out_w, out_h), interpolation=method)  # noqa: E731
    image, bad_frac, ignore = cut(item.image), cut(item.bad), cut(item.ignore)
    weight = (ignore < 0.5).astype(np.float32)
    bad_frac = np.where(ignore < 1, bad_frac / np.maximum(1 - ignore, 1e-6), 0).astype(np.float32)
    # pad to the window (the micrograph may be smaller than the window): weight 0 there
    pad_y, pad_x = size - out_h, size - out_w
    if pad_y > 0 or pad_x > 0:
        pads = ((0, max(0, pad_y)), (0, max(0, pad_x)))
        image = np.pad(image, pads, mode="reflect" if min(out_h, out_w) > 1 else "edge")
        bad_frac, weight = np.pad(bad_frac, pads), np.pad(weight, pads)
    image, bad_frac, weight = image[:size, :size], bad_frac[:size, :size], weight[:size, :size]
    return rotate(rng, image, np.clip(bad_frac, 0, 1), weight)


def rotate(rng: np.random.Generator, image: np.ndarray, mask: np.ndarray, weight: np.ndarray):
    """Rotate by a random angle (reflected border; weight 0 outside the original)."""
    angle = rng.uniform(0, 360)
    h, w = image.shape
    matrix = cv2.getRotationMatrix2D((w / 2 - 0.5, h / 2 - 0.5), angle, 1.0)
    warp = lambda a, border: cv2.warpAffine(a, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=border)  # noqa: E731
    inside = warp(np.ones_like(weight), cv2.BORDER_CONSTANT)
    return (
        warp(image, cv2.BORDER_REFLECT),
        warp(mask, cv2.BORDER_REFLECT),
        (warp(weight, cv2.BORDER_REFLECT) * inside > 0.5).astype(np.float32),
    )


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    noise = cv2.GaussianBlur(rng.normal(size=shape).astype(np.float32), (0, 0), sigma)
    return noise / max(float(noise.std()), 1e-6)


def _blob(rng: np.random.Generator, shape: tuple[int, int], radius: float, lobes: float = 0.3) -> np.ndarray:
    """Float coverage (0-1, soft edge) of a star-shaped blob of ``radius`` at a random place."""
    h, w = shape
    cy, cx = rng.uniform(-0.1 * h, 1.1 * h), rng.uniform(-0.1 * w, 1.1 * w)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    theta = np.arctan2(yy - cy, xx - cx)
    r = np.full_like(theta, radius)
    for k in range(2, 6):
        r *= 1 + lobes / k * rng.uniform(-1, 1) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    dist = np.hypot(yy - cy, xx - cx) - r
    return np.clip(0.5 - dist / rng.uniform(0.7, 2.0), 0, 1)


def _polygon(rng: np.random.Generator, shape: tuple[int, int], radius: float) -> np.ndarray:
    h, w = shape
    centre = np.array([rng.uniform(0, w), rng.uniform(0, h)])
    sides = 6 if rng.random() < 0.6 else int(rng.integers(4, 9))
    angles = np.sort(rng.uniform(0, 2 * np.pi, sides)) if sides != 6 else np.arange(6) * np.pi / 3 + rng.uniform(0, np.pi)
    points = centre + radius * np.stack([np.cos(angles), np.sin(angles)], 1) * rng.uniform(0.8, 1.2, (sides, 1))
    canvas = np.zeros((h * 4, w * 4), np.uint8)  # 4x supersampled for a soft edge
    cv2.fillPoly(canvas, [np.round(points * 4).astype(np.int32)], 1)
    return cv2.resize(canvas.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)


def _carbon(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Coverage of carbon film beyond a curved hole edge (hole radius 1-8 window sides)."""
    h, w = shape
    radius = float(np.exp(rng.uniform(np.log(1), np.log(8)))) * max(h, w)
    angle = rng.uniform(0, 2 * np.pi)
    inside_depth = rng.uniform(0.15, 0.85) * max(h, w)  # how far the film reaches in
    edge = np.array([w / 2, h / 2]) + (max(h, w) / 2 - inside_depth) * np.array([np.cos(angle), np.sin(angle)])
    centre = edge - radius * np.array([np.cos(angle), np.sin(angle)])  # hole centre
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    wobble = 1.5 * _smooth_noise(rng, shape, 20)
    dist = np.hypot(xx - centre[0], yy - centre[1]) - radius + wobble  # > 0 on the film
    return np.clip(0.5 + dist / rng.uniform(0.7, 1.5), 0, 1)


def phase_randomised(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """A zero-mean Gaussian texture with the power spectrum of ``image`` (its Fourier
    amplitudes with random phases): the same energy at every scale, no compact shapes."""
    centred = np.asarray(image, np.float32) - np.float32(np.mean(image))
    amplitude = np.abs(np.fft.rfft2(centred))
    phases = np.angle(np.fft.rfft2(rng.normal(size=centred.shape)))  # Hermitian-consistent random phases
    return np.fft.irfft2(amplitude * np.exp(1j * phases), s=centred.shape).astype(np.float32)


def _carbon_film(rng: np.random.Generator, image: np.ndarray, median: float, spread: float, film_darker: float = 0.85,
                 grain: str = "fine", reach: float = 1.3):
    """(image, coverage) with carbon film pasted beyond a curved hole edge, as carbon looks
    on real micrographs (EMPIAR-10017): the film *replaces* the ice (no particles, or a
    few faint ones), carries its own fine grain as strong as the image's own pixel-scale
    detail plus a slow mottle, is darker (thicker) than the ice -- brighter in a share
    ``1 - film_darker`` --,
    and has a Fresnel fringe: a thin bright line on the hole side and a darker band on
    the film side. The film reaches 0.15-``reach`` window sides in: with the default 1.3
    whole windows of film (no edge in view) are common, so deep carbon is learnt from its
    texture and level alone; with ``reach`` < 1 the edge is always in the window, so a
    darker area with no edge in view is never taught as film (deep carbon is then
    reached through the region it shares with its edge: ``regions.seeded_probability``).

    ``grain="spectrum"``: the film's grain has the ice's own power spectrum (the window
    with its Fourier phases randomised): as strong as the ice at every scale, so only
    the particles' discrete shapes, the level and the edge set film apart. On
    EMPIAR-10017 the carbon's band-pass energy matches the ice's; only its level differs
    (-0.75 against +0.07 IQR on 15_27_22)."""
    h, w = image.shape
    side = max(h, w)
    radius = float(np.exp(rng.uniform(np.log(1), np.log(8)))) * side
    angle = rng.uniform(0, 2 * np.pi)
    direction = np.array([np.cos(angle), np.sin(angle)])
    edge = np.array([w / 2, h / 2]) + (side / 2 - rng.uniform(0.15, reach) * side) * direction
    centre = edge - radius * direction  # hole centre; film beyond the arc
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dist = np.hypot(xx - centre[0], yy - centre[1]) - radius + 1.5 * _smooth_noise(rng, image.shape, 20)
    cover = np.clip(0.5 + dist / rng.uniform(0.7, 1.5), 0, 1).astype(np.float32)
    if grain == "spectrum":
        grain = phase_randomised(rng, image) * rng.uniform(0.7, 1.2)
    else:
        detail = float(np.std(image - cv2.GaussianBlur(image, (0, 0), 2.0)))
        grain = _smooth_noise(rng, image.shape, rng.uniform(0.5, 1.2)) * detail * rng.uniform(0.6, 1.4)
    mottle = _smooth_noise(rng, image.shape, rng.uniform(2.0, 6.0)) * spread * rng.uniform(0.05, 0.35)
    level = spread * (rng.uniform(0.3, 2.0) if rng.random() < film_darker else -rng.uniform(0.2, 1.0))
    keep = rng.uniform(0.0, 0.25)  # few, faint particles on carbon (they partition into the holes)
    film = median - level + grain + mottle + keep * (image - median)
    out = image * (1 - cover) + film * cover
    bright = rng.uniform(0.5, 2.5) * spread * np.exp(-((dist + rng.uniform(0.5, 2.0)) ** 2) / (2 * rng.uniform(0.5, 1.2) ** 2))
    dark_width = rng.uniform(1.5, 6.0)
    dark = rng.uniform(0.2, 1.5) * spread * np.exp(-np.clip(dist, 0, None) / dark_width) * cover
    sign = 1 if rng.random() < 0.8 else -1
    out = out + sign * (bright - dark)
    return out.astype(np.float32), cover


def paste_defects(rng: np.random.Generator, image: np.ndarray, mask: np.ndarray, n_max: int = 3,
                  carbon: str = "overlay", carbon_share: float = 0.35, film_darker: float = 0.85,
                  film_grain: str = "fine", film_reach: float = 1.3):
    """Paste 1-``n_max`` simulated defects onto a clean model-scale ``image`` (particles
    dark). Contrast is in units of the image's own robust spread, so it suits any look.

    * carbon film beyond a curved hole edge (share ``carbon_share`` of the defects):
      ``carbon="overlay"`` darkens or brightens the ice, adds a granular texture and a
      bright/dark fringe (particles stay at 0-70 % strength); ``carbon="film"`` replaces
      the ice by film as it looks on real micrographs (:func:`_carbon_film`, its grain
      ``film_grain``: "fine" or "spectrum"; reaching up to ``film_reach`` window sides in);
    * contamination: dark star-shaped blobs with a bright Fresnel halo;
    * crystalline ice: hexagons (or other polygons), bright or dark, with bend contours;
    * ethane droplets: round, smooth, a little darker with a faint rim;
    * aggregates: clusters of dark particle-sized blobs;
    * ice-thickness gradient over the whole window (not a defect: mask unchanged).
    """
    image = image.astype(np.float32).copy()
    mask = mask.astype(np.float32).copy()
    q25, median, q75 = np.percentile(image, [25, 50, 75])
    spread = max(float(q75 - q25), 1e-6)
    shape = image.shape
    if rng.random() < 0.3:  # thickness gradient
        yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32) / max(shape)
        image += spread * rng.uniform(-1, 1) * (np.cos(rng.uniform(0, 6.3)) * xx + np.sin(rng.uniform(0, 6.3)) * yy)
    for _ in range(int(rng.integers(1, n_max + 1))):
        others = (1 - carbon_share) / 0.65
        kind = rng.choice(["carbon", "blob", "crystal", "ethane", "aggregate"],
                          p=[carbon_share, 0.3 * others, 0.15 * others, 0.1 * others, 0.1 * others])
        if kind == "carbon" and carbon == "film":
            image, cover = _carbon_film(rng, image, float(median), spread, film_darker, film_grain, film_reach)
        elif kind == "carbon":
            cover = _carbon(rng, shape)
            texture = _smooth_noise(rng, shape, rng.uniform(0.6, 2.0))
            level = rng.uniform(0.3, 2.5) * (1 if rng.random() < 0.85 else -0.5)
            ring = np.exp(-((cover - 0.5) ** 2) / 0.08) * rng.uniform(-1.5, 1.5)
            # few, faint particles on carbon (they partition into the holes)
            keep = rng.uniform(0.0, 0.7)
            image = image * (1 - cover * (1 - keep)) + median * cover * (1 - keep)
            image += spread * (-level * cover + rng.uniform(0.2, 0.8) * texture * cover + ring)
        elif kind in ("blob", "aggregate"):
            radius = float(np.exp(rng.uniform(np.log(3), np.log(60)))) if kind == "blob" else rng.uniform(4, 10)
            cover = _blob(rng, shape, radius) if kind == "blob" else np.zeros(shape, np.float32)
            if kind == "aggregate":
                cy, cx = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
                yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
                for _ in range(int(rng.integers(6, 25))):
                    py, px = cy + rng.normal(0, radius * 0.8), cx + rng.normal(0, radius * 0.8)
                    cover = np.maximum(cover, np.clip(4.5 - np.hypot(yy - py, xx - px), 0, 1))
            if cover.max() < 0.5:
                continue
            depth = rng.uniform(2, 8) if kind == "blob" else rng.uniform(1.5, 3)
            dome = cv2.GaussianBlur(cover, (0, 0), max(1.0, radius / 4))
            halo = cv2.GaussianBlur(cover, (0, 0), rng.uniform(1, 3)) - cover
            image += spread * (-depth * np.maximum(cover, dome * cover) + rng.uniform(0, 3) * np.clip(halo, 0, None))
            image += spread * 0.3 * _smooth_noise(rng, shape, 1.0) * cover
        elif kind == "crystal":
            cover = _polygon(rng, shape, float(np.exp(rng.uniform(np.log(6), np.log(80)))))
            yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
            bends = np.sin((xx * np.cos(rng.uniform(0, 6.3)) + yy * np.sin(rng.uniform(0, 6.3))) / rng.uniform(3, 15))
            sign = 1 if rng.random() < 0.5 else -1
            image += spread * cover * (sign * rng.uniform(1, 4) + rng.uniform(0.5, 2) * bends)
        else:  # ethane droplet
            cover = _blob(rng, shape, rng.uniform(8, 60), lobes=0.05)
            rim = np.clip(cv2.GaussianBlur(cover, (0, 0), 1.5) - cover, 0, None)
            image += spread * (-rng.uniform(0.5, 1.5) * cover + rng.uniform(1, 3) * rim)
        mask = np.maximum(mask, cover)
    return image, np.clip(mask, 0, 1)


def thicker_ice(rng: np.random.Generator, image: np.ndarray, pattern: np.ndarray, amplitude: float) -> np.ndarray:
    """``image`` under ice whose thickness varies as ``pattern`` (smooth, unit std): darker
    by ``amplitude * pattern`` (brighter where thinner) and, where thicker, the particles
    fade into a texture with the ice's own power spectrum (more inelastic scattering,
    lower contrast), so the texture's strength stays. Not a bad region: EMPIAR-10059's
    darker, particle-poor corners look like this, and like carbon film without its edge."""
    local = cv2.GaussianBlur(image, (0, 0), 3.0)
    detail = image - local
    fade = np.exp(-rng.uniform(0.3, 1.2) * np.clip(pattern, 0, None)).astype(np.float32)
    texture = phase_randomised(rng, detail)
    return (local - amplitude * pattern + detail * fade + texture * np.sqrt(1 - fade**2)).astype(np.float32)


def vary_look(rng: np.random.Generator, image: np.ndarray, shading: float = 0.7, shading_max: float = 1.5,
              thick_ice: float = 0.0) -> np.ndarray:
    """A random "look" of the same micrograph: what preprocessing, export and detectors do.

    Each with some probability: slow shading (ice thickness, illumination; not a bad
    region; probability ``shading``, amplitude 0.2-``shading_max`` times the image's
    interquartile range), contrast stretch + gamma, resampling down and back up
    (another pixel size), Gaussian blur (denoised), added white noise (raw),
    CLAHE (contrast-equalised), 8-bit quantisation with clipped tails, JPEG compression.
    """
    image = image.astype(np.float32)
    if rng.random() < shading:
        # soft brighter / darker patches and gradients (thickness, illumination) are not
        # defects: EMPIAR-10059's slightly brighter corners were flagged without this
        q25, q75 = np.percentile(image, [25, 75])
        pattern = _smooth_noise(rng, image.shape, max(image.shape) * rng.uniform(0.1, 0.5))
        amplitude = float(q75 - q25) * rng.uniform(0.2, max(shading_max, 0.2))
        if thick_ice > 0 and rng.random() < thick_ice:  # a share ``thick_ice`` of the shading: thicker ice (:func:`thicker_ice`)
            image = thicker_ice(rng, image, pattern, amplitude)
        else:
            image = image + amplitude * pattern
    lo, hi = np.percentile(image, [0.5, 99.5])
    unit = np.clip((image - lo) / max(float(hi - lo), 1e-6), 0, 1)
    if rng.random() < 0.5:
        unit = unit ** float(np.exp(rng.uniform(-0.5, 0.5)))
    if rng.random() < 0.25:  # another pixel size: resampled down and back (interpolated texture)
        factor = rng.uniform(1.2, 2.5)
        h, w = unit.shape
        small = cv2.resize(unit, (max(2, round(w / factor)), max(2, round(h / factor))), interpolation=cv2.INTER_AREA)
        unit = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR if rng.random() < 0.5 else cv2.INTER_CUBIC)
    if rng.random() < 0.4:
        unit = cv2.GaussianBlur(unit, (0, 0), rng.uniform(0.4, 1.5))
    if rng.random() < 0.5:
        detail = float(np.std(unit - cv2.GaussianBlur(unit, (0, 0), 2.0)))
        unit = unit + rng.normal(0, max(detail, 0.02) * rng.uniform(0.3, 2.0), unit.shape).astype(np.float32)
    if rng.random() < 0.5:
        unit = (np.clip(unit, 0, 1) * 255).astype(np.uint8)
        clahe = cv2.createCLAHE(clipLimit=float(rng.uniform(1.5, 4.0)), tileGridSize=(int(rng.integers(2, 9)),) * 2)
        unit = clahe.apply(unit).astype(np.float32) / 255
    if rng.random() < 0.5:
        low, high = np.percentile(unit, [rng.uniform(0, 3), 100 - rng.uniform(0, 3)])
        eight = np.clip((unit - low) / max(float(high - low), 1e-6) * 255, 0, 255).astype(np.uint8)
        if rng.random() < 0.5:
            ok, encoded = cv2.imencode(".jpg", eight, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(30, 96))])
            eight = cv2.imdecode(encoded, cv2.IMREAD_GRAYSCALE)
        unit = eight.astype(np.float32)
    return unit.astype(np.float32)
