"""Bad-region probability of a prepared micrograph: overlapping tiles, blended seamlessly.

Inference runs with onnxruntime (no torch needed) on the shipped ``weights/cleaner_unet.onnx``;
with ``device="cuda"`` (or ``"auto"`` when torch sees a GPU) the torch checkpoint is used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

from scopeline.errors import ConfigError

WEIGHTS_DIR = Path(__file__).parent / "weights"
DEFAULT_ONNX = WEIGHTS_DIR / "cleaner_unet.onnx"
DEFAULT_TORCH = WEIGHTS_DIR / "cleaner_unet.pt"
MULTIPLE = 8  # U-Net input sides must be multiples of 2 ** (levels - 1)


class BadRegionModel:
    """The segmentation network behind one call: ``logits(batch (N,1,H,W) float32)``."""

    def __init__(
        self,
        path: str | Path | None = None,
        device: Literal["auto", "cpu", "cuda", "torch-cpu"] = "auto",
        threads: int = 2,
    ):
        self.device = device
        self.backend = "onnx"
        use_torch = device in ("cuda", "torch-cpu") or (device == "auto" and _cuda_available())
        path = Path(path) if path is not None else (DEFAULT_TORCH if use_torch else DEFAULT_ONNX)
        if not path.is_file():
            raise ConfigError(path, "cleaner model weights not found", "reinstall scopeline or pass a model path")
        self.path = path
        if path.suffix == ".pt":
            self._init_torch(path, "cuda" if device in ("cuda", "auto") and _cuda_available() else "cpu", threads)
        else:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def _init_torch(self, path: Path, torch_device: str, threads: int) -> None:
        import torch

        from scopeline.cryoem.cleaner.onnx_export import load_unet

        if torch_device == "cpu":
            torch.set_num_threads(threads)
        self.backend = f"torch-{torch_device}"
        self._torch_device = torch_device
        self._model = load_unet(path).to(torch_device)

    def logits(self, batch: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if self.backend == "onnx":
            return self._session.run(None, {"image": batch})[0]
        import torch

        with torch.no_grad():
            return self._model(torch.from_numpy(batch).to(self._torch_device)).cpu().numpy()


def _cuda_available() -> bool:
    """True when torch is installed and sees a GPU; torch is not imported on machines
    without an NVIDIA driver (it costs seconds)."""
    import importlib.util
    import os

    if not os.path.exists("/proc/driver/nvidia") or importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available()) and DEFAULT_TORCH.is_file()


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of size ``tile`` covering ``length``, overlapping >= ``overlap``."""
    if length <= tile:
        return [0]
    step = tile - overlap
    starts = list(range(0, length - tile, step))
    return starts + [length - tile]


def blend_window(tile: int, overlap: int) -> np.ndarray:
    """1-D weight: linear ramp over ``overlap`` pixels at both ends, 1 inside, never 0."""
    i = np.arange(tile, dtype=np.float32)
    ramp = np.minimum((i + 0.5) / max(overlap, 1), (tile - i - 0.5) / max(overlap, 1))
    return np.clip(ramp, 1e-3, 1.0)


def predict_probability(
    image: np.ndarray, model: BadRegionModel, tile: int = 256, overlap: int = 32, batch: int = 4
) -> np.ndarray:
    """Per-pixel probability of a bad region for a normalised model-scale ``image``."""
    if tile % MULTIPLE or overlap >= tile:
        raise ValueError(f"tile must be a multiple of {MULTIPLE} and larger than overlap")
    height, width = image.shape
    # pad to at least one tile (and to a multiple of 8) by mirroring
    padded_h = max(tile, height) if height >= tile else tile
    padded_w = max(tile, width) if width >= tile else tile
    padded_h += (-padded_h) % MULTIPLE
    padded_w += (-padded_w) % MULTIPLE
    padded = np.pad(image, ((0, padded_h - height), (0, padded_w - width)), mode="symmetric")

    window = blend_window(tile, overlap)
    weight2d = window[:, None] * window[None, :]
    total = np.zeros((padded_h, padded_w), np.float32)
    weights = np.zeros((padded_h, padded_w), np.float32)
    corners = [(y, x) for y in tile_starts(padded_h, tile, overlap) for x in tile_starts(padded_w, tile, overlap)]
    for first in range(0, len(corners), batch):
        chunk = corners[first : first + batch]
        tiles = np.stack([padded[y : y + tile, x : x + tile] for y, x in chunk])[:, None]
        prob = _sigmoid(model.logits(tiles)[:, 0])
        for (y, x), p in zip(chunk, prob):
            total[y : y + tile, x : x + tile] += p * weight2d
            weights[y : y + tile, x : x + tile] += weight2d
    return (total / weights)[:height, :width]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-np.clip(x, -30, 30)))).astype(np.float32)
