"""Labelled real micrographs for training and validating the cleaner.

A :class:`Labelled` micrograph is an image at full resolution with a target per pixel
(``GOOD`` 0, ``BAD`` 1, ``IGNORE`` 255) and the particle box in pixels. Readers:

* :func:`read_labelled` -- a user's micrograph and label mask (PNG/TIFF/JPG/MRC);
* :func:`load_empiar10017` / :func:`load_cryoppp` -- the two sets described in
  ``shared/data/micrographs/README.md`` (never shipped in the package).

Label conventions (``label_format``):

* ``"classes"`` (default): 0 good ice / background, 1 particle (good), 2 ice
  contamination, 3 carbon, 4 excluded (ignored in training and scoring), 5 other bad
  (crystalline ice, ethane, aggregates); any other value is bad too.
* ``"binary"``: 0 good, any non-zero value bad (0/1 or 0/255 masks).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from scopeline.errors import InputError

GOOD, BAD, IGNORE = 0, 1, 255
IMAGE_SUFFIXES = (".mrc", ".mrcs", ".tif", ".tiff", ".png", ".jpg", ".jpeg")
EMPIAR10017_BOX = 128.0  # px at 1.77 A/px (particle ~108 px)
# CryoPPP particles measured from the label masks (median disk diameter at 1024 px):
# 10028 ~56 px, 10059 ~36 px; box = 1.2 x diameter like EMPIAR-10017 (128 / 108)
CRYOPPP_BOX = {"10028": 68.0, "10059": 44.0}
CRYOPPP_NOT_CLEAN = ("314_10028", "stack_0003_2x_dfpt_10059")  # contamination / aggregate (README)


@dataclass
class Labelled:
    """A real micrograph with per-pixel targets (full resolution)."""

    name: str
    image: np.ndarray  # 2-D, uint8 or float32
    target: np.ndarray  # uint8: GOOD, BAD or IGNORE, same shape as image
    box_size: float  # particle box in image pixels
    clean: bool = False  # no bad region: simulated defects may be pasted on it
    particles: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))  # (x, y) centres
    split: str = ""

    def bad_pixels(self, step: int = 16) -> np.ndarray:
        """(row, col) of bad pixels on a grid of ``step`` (to centre crops on bad regions)."""
        rows, cols = np.nonzero(self.target[::step, ::step] == BAD)
        return np.stack([rows * step, cols * step], axis=1)


def labels_to_target(labels: np.ndarray, label_format: Literal["classes", "binary"] = "classes") -> np.ndarray:
    """Per-pixel target (GOOD / BAD / IGNORE, uint8) from a label image (see module doc)."""
    labels = np.asarray(labels)
    if labels.ndim == 3:
        labels = labels[..., 0]
    if label_format == "binary":
        return np.where(labels != 0, BAD, GOOD).astype(np.uint8)
    if label_format != "classes":
        raise ValueError(f"unknown label format {label_format!r}")
    values = np.rint(labels).astype(np.int64) if labels.dtype.kind == "f" else labels.astype(np.int64)
    target = np.where((values == 0) | (values == 1), GOOD, BAD).astype(np.uint8)
    target[values == 4] = IGNORE
    return target


def read_image(path: str | Path) -> np.ndarray:
    """A 2-D image from MRC/TIFF (float32) or PNG/JPG (as stored, grey)."""
    path = Path(path)
    if path.suffix.lower() in (".png", ".jpg", ".jpeg"):
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise InputError(path, "cannot read this image", "give a readable PNG/JPG/TIFF/MRC file")
        if image.ndim == 3:
            image = cv2.cvtColor(image[..., :3], cv2.COLOR_BGR2GRAY)
        return image
    from scopeline.cryoem.cleaner.clean import read_micrograph

    return read_micrograph(path)[0]


def read_labelled(
    image_path: str | Path,
    label_path: str | Path,
    box_size: float,
    label_format: Literal["classes", "binary"] = "classes",
) -> Labelled:
    """A user's micrograph and label mask (same shape) as a :class:`Labelled`."""
    image = read_image(image_path)
    labels = read_image(label_path)
    if labels.shape != image.shape:
        raise InputError(label_path, f"label shape {labels.shape} differs from micrograph {image.shape}",
                         "give a label image of the micrograph's size")
    if image.dtype != np.uint8:
        image = np.asarray(image, np.float32)
    if not np.isfinite(image).all():
        raise InputError(image_path, "micrograph contains NaN or Inf values", "fix or drop this micrograph")
    target = labels_to_target(labels, label_format)
    return Labelled(Path(image_path).stem, image, target, float(box_size), clean=not (target == BAD).any())


def pair_folders(images: str | Path, labels: str | Path) -> list[tuple[Path, Path]]:
    """Match micrographs in ``images`` with label files in ``labels`` by stem (label stems
    may end in ``_class``, ``_label(s)`` or ``_mask``)."""
    images, labels = Path(images), Path(labels)
    for folder, option in ((images, "--images"), (labels, "--labels")):
        if not folder.is_dir():
            raise InputError(folder, f"{option} is not a folder", f"give {option} DIR")
    by_stem = {}
    for path in sorted(labels.iterdir()):
        if path.suffix.lower() in IMAGE_SUFFIXES:
            stem = path.stem
            for suffix in ("_class", "_labels", "_label", "_mask"):
                if stem.endswith(suffix):
                    stem = stem[: -len(suffix)]
                    break
            by_stem[stem] = path
    pairs = [(p, by_stem[p.stem]) for p in sorted(images.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES and p.stem in by_stem]
    if not pairs:
        raise InputError(labels, f"no label file matches a micrograph of {images}",
                         "name labels like the micrographs (mic01.mrc -> mic01.png or mic01_class.png)")
    return pairs


def _component_centres(mask: np.ndarray) -> np.ndarray:
    n, _, _, centroids = cv2.connectedComponentsWithStats(mask.astype(np.uint8))
    return centroids[1:].astype(float)


def load_empiar10017(root: str | Path) -> list[Labelled]:
    """The 7 hand-labelled EMPIAR-10017 micrographs (``root`` = ``.../micrographs``).

    Particle centres are the centroids of CryoSegNet's particle disks."""
    folder = Path(root) / "empiar10017"
    out = []
    for path in sorted((folder / "images").glob("*.jpg")):
        image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        labels = cv2.imread(str(folder / "labels" / f"{path.stem}_class.png"), cv2.IMREAD_GRAYSCALE)
        disks = cv2.imread(str(folder / "particles" / f"{path.stem}_mask.jpg"), cv2.IMREAD_GRAYSCALE)
        target = labels_to_target(labels)
        particles = _component_centres(disks > 127) if disks is not None else np.zeros((0, 2))
        out.append(Labelled(path.stem, image, target, EMPIAR10017_BOX, clean=not (target == BAD).any(),
                            particles=particles))
    return out


def load_cryoppp(root: str | Path, splits: tuple[str, ...] = ("train", "valid", "test")) -> list[Labelled]:
    """The CryoPPP micrographs (all pixels GOOD: only particles are labelled).

    ``clean`` is False for the two the README names as holding contamination / an
    aggregate (their targets are then IGNORE everywhere: the region is not drawn)."""
    out = []
    for dataset, box in CRYOPPP_BOX.items():
        for split in splits:
            for path in sorted((Path(root) / "cryoppp" / dataset / split / "images").glob("*.png")):
                image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
                mask = cv2.imread(str(path.parent.parent / "labels" / path.name), cv2.IMREAD_GRAYSCALE)
                scale = image.shape[1] / mask.shape[1]
                particles = (_component_centres(mask > 127) + 0.5) * scale - 0.5
                clean = path.stem not in CRYOPPP_NOT_CLEAN
                target = np.full(image.shape, GOOD if clean else IGNORE, np.uint8)
                out.append(Labelled(path.stem, image, target, box, clean=clean, particles=particles, split=split))
    return out
