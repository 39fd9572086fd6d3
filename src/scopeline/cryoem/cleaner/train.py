"""Train (or fine-tune) the bad-region U-Net on simulated micrographs and user pairs.

Train from scratch on ``synth.py`` data (reproducible from ``--seed`` for a fixed
``--steps``; ``--minutes`` stops early on a time budget)::

    python -m scopeline.cryoem.cleaner.train --out runs/cleaner --minutes 40 --steps 1500

Fine-tune the shipped weights on your own labelled micrographs (mask: same shape as the
micrograph, 1 = bad region, MRC or TIFF), mixed with simulated data::

    python -m scopeline.cryoem.cleaner.train fine-tune --pair mic1.mrc mask1.mrc \\
        --pair mic2.mrc mask2.mrc --box-size 200 --out runs/tuned --minutes 20

The output folder gets ``cleaner_unet.pt`` (state dict), ``cleaner_unet.onnx`` and
``train_log.json``. Copy the ONNX file over ``weights/cleaner_unet.onnx`` or pass it with
``CleanParams(model=...)`` to use it.

Seeds: training images use ``seed * 1_000_000 + i``; validation uses
``VALIDATION_SEED + i`` and held-out evaluation ``HELD_OUT_SEED + i``, never trained on.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from scopeline.cryoem.cleaner.model import UNet
from scopeline.cryoem.cleaner.onnx_export import export_onnx, load_unet
from scopeline.cryoem.cleaner.preprocess import downsample, prepare, robust_normalise
from scopeline.cryoem.cleaner.synth import simulate_micrograph
from scopeline.io.atomic import atomic_path, write_json

VALIDATION_SEED = 1_500_000_000
HELD_OUT_SEED = 2_000_000_000


@dataclass
class TrainConfig:
    out: Path
    minutes: float = 40.0
    steps: int = 1500
    seed: int = 0
    batch: int = 8
    crop: int = 128
    image_size: int = 256
    lr: float = 3e-3
    buffer: int = 160  # simulated images kept for cropping
    refresh_every: int = 2  # steps between replacing one buffered image by a new one
    channels: tuple[int, ...] = (8, 16, 32, 64)
    threads: int = 2
    init: Path | None = None
    pairs: list[tuple[Path, Path]] = field(default_factory=list)
    box_size: float | None = None
    user_fraction: float = 0.5  # share of each batch drawn from user pairs, if any
    vary_sampling: bool = True  # resample / blur / add noise to simulated micrographs


def _simulate(seed: int, size: int, vary: bool = True) -> tuple[np.ndarray, np.ndarray]:
    micrograph = simulate_micrograph(seed, size)
    image, mask = micrograph.image, micrograph.mask
    if vary:
        image, mask = vary_sampling(np.random.default_rng([seed, 1]), image, mask)
    return robust_normalise(image), mask


def vary_sampling(rng: np.random.Generator, image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vary what real data varies and the simulation fixes: the sampling (box not exactly
    16 px, interpolation), the detector's blur (MTF) and the noise level. Without this the
    network learns the simulated noise texture as "clean ice"."""
    if rng.random() < 0.7:
        factor = float(np.exp(rng.uniform(np.log(0.6), np.log(1.6))))
        side = (max(16, int(round(image.shape[1] * factor))), max(16, int(round(image.shape[0] * factor))))
        method = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
        image, mask = cv2.resize(image, side, interpolation=method), cv2.resize(mask, side, interpolation=method)
    if rng.random() < 0.5:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.3, 1.2))
    if rng.random() < 0.5:
        noise = float(np.std(image - cv2.GaussianBlur(image, (0, 0), 2.0)))
        image = image + rng.normal(0, noise * rng.uniform(0.2, 1.5), image.shape).astype(np.float32)
    return image.astype(np.float32), np.clip(mask, 0, 1).astype(np.float32)


def load_pair(micrograph_path: Path, mask_path: Path, box_size: float) -> tuple[np.ndarray, np.ndarray]:
    """A user micrograph and its mask at model scale: (normalised image, mask in [0, 1])."""
    from scopeline.cryoem.cleaner.clean import read_micrograph

    image, _ = read_micrograph(micrograph_path)
    mask, _ = read_micrograph(mask_path)
    if mask.shape != image.shape:
        from scopeline.errors import InputError

        raise InputError(mask_path, f"mask shape {mask.shape} differs from micrograph {image.shape}")
    prepared, factor = prepare(image, box_size)
    small_mask = np.clip(downsample(mask, factor), 0, 1)
    return prepared, small_mask[: prepared.shape[0], : prepared.shape[1]]


def _random_crop(rng: np.random.Generator, image: np.ndarray, mask: np.ndarray, crop: int):
    pad_y, pad_x = max(0, crop - image.shape[0]), max(0, crop - image.shape[1])
    if pad_y or pad_x:
        image = np.pad(image, ((0, pad_y), (0, pad_x)), mode="reflect")
        mask = np.pad(mask, ((0, pad_y), (0, pad_x)), mode="reflect")
    y = rng.integers(0, image.shape[0] - crop + 1)
    x = rng.integers(0, image.shape[1] - crop + 1)
    image, mask = image[y : y + crop, x : x + crop], mask[y : y + crop, x : x + crop]
    k = int(rng.integers(4))
    image, mask = np.rot90(image, k), np.rot90(mask, k)
    if rng.random() < 0.5:
        image, mask = image[:, ::-1], mask[:, ::-1]
    return image, mask


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy plus soft Dice on the bad class."""
    bce = F.binary_cross_entropy_with_logits(logits, target)
    prob = torch.sigmoid(logits)
    dice = 1 - (2 * (prob * target).sum() + 1) / (prob.sum() + target.sum() + 1)
    return bce + 0.5 * dice


def train(config: TrainConfig, log=lambda text: print(text, flush=True)) -> dict:
    """Train, write the state dict, ONNX export and log to ``config.out``; return the log."""
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    rng = np.random.default_rng(config.seed)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)

    model = load_unet(config.init) if config.init else UNet(config.channels)
    model.train()
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=config.lr, total_steps=config.steps)
    user = [load_pair(m, k, config.box_size) for m, k in config.pairs] if config.pairs else []

    validation = [_simulate(VALIDATION_SEED + i, config.image_size, config.vary_sampling) for i in range(8)]
    base_seed = config.seed * 1_000_000
    pool = multiprocessing.get_context("spawn").Pool(1)
    ahead = 8
    job = (config.image_size, config.vary_sampling)
    pending = [pool.apply_async(_simulate, (base_seed + i, *job)) for i in range(config.buffer + ahead)]
    buffer = [pending[i].get() for i in range(config.buffer)]
    next_image = config.buffer

    start = time.monotonic()
    history = []
    step = 0
    try:
        for step in range(1, config.steps + 1):
            if step % config.refresh_every == 0:
                buffer[next_image % config.buffer] = pending[next_image].get()
                pending.append(pool.apply_async(_simulate, (base_seed + next_image + ahead, *job)))
                pending[next_image] = None
                next_image += 1
            images, masks = [], []
            for _ in range(config.batch):
                source = user if user and rng.random() < config.user_fraction else buffer
                image, mask = _random_crop(rng, *source[rng.integers(len(source))], config.crop)
                images.append(image)
                masks.append(mask)
            x = torch.from_numpy(np.stack(images)[:, None].copy())
            y = torch.from_numpy(np.stack(masks)[:, None].copy())
            loss = segmentation_loss(model(x), y)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            elapsed = time.monotonic() - start
            if step % 50 == 0 or step == config.steps:
                record = {"step": step, "seconds": round(elapsed, 1), "loss": round(loss.item(), 5)}
                if step % 200 == 0 or step == config.steps:
                    record["validation_loss"] = validation_loss(model, validation)
                history.append(record)
                log(json.dumps(record))
            if elapsed > config.minutes * 60:
                log(f"time budget of {config.minutes} min reached at step {step}")
                break
    finally:
        pool.terminate()

    model.eval()
    summary = {
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(config).items() if k != "pairs"},
        "pairs": [[str(m), str(k)] for m, k in config.pairs],
        "steps_done": step,
        "seconds": round(time.monotonic() - start, 1),
        "validation_loss": validation_loss(model, validation),
        "history": history,
    }
    with atomic_path(out / "cleaner_unet.pt") as tmp:
        torch.save({"channels": list(model.channels), "state_dict": model.state_dict()}, tmp)
    export_onnx(model, out / "cleaner_unet.onnx")
    write_json(out / "train_log.json", summary)
    return summary


def validation_loss(model: UNet, validation: list[tuple[np.ndarray, np.ndarray]]) -> float:
    was_training = model.training
    model.eval()
    losses = []
    with torch.no_grad():
        for image, mask in validation:  # sizes differ; U-Net sides must be multiples of 8
            h, w = image.shape[0] // 8 * 8, image.shape[1] // 8 * 8
            x = torch.from_numpy(np.ascontiguousarray(image[:h, :w])[None, None])
            y = torch.from_numpy(np.ascontiguousarray(mask[:h, :w])[None, None])
            losses.append(float(segmentation_loss(model(x), y)))
        value = float(np.mean(losses))
    model.train(was_training)
    return round(value, 5)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", nargs="?", choices=["train", "fine-tune"], default="train")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--minutes", type=float, default=40.0)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--init", type=Path, default=None, help="start from this checkpoint (.pt)")
    parser.add_argument("--pair", nargs=2, action="append", type=Path, default=[], metavar=("MICROGRAPH", "MASK"))
    parser.add_argument("--box-size", type=float, default=None, help="particle box (px) of the user micrographs")
    parser.add_argument("--no-vary-sampling", action="store_true", help="simulated data exactly as synth.py makes it")
    args = parser.parse_args(argv)

    fine_tune = args.mode == "fine-tune"
    if fine_tune and (not args.pair or args.box_size is None):
        parser.error("fine-tune needs at least one --pair MICROGRAPH MASK and --box-size")
    init = args.init
    if fine_tune and init is None:
        init = Path(__file__).parent / "weights" / "cleaner_unet.pt"
    config = TrainConfig(
        out=args.out,
        minutes=args.minutes,
        steps=args.steps or (300 if fine_tune else 1500),
        seed=args.seed,
        batch=args.batch,
        crop=args.crop,
        lr=args.lr or (5e-4 if fine_tune else 3e-3),
        init=init,
        pairs=[(m, k) for m, k in args.pair],
        box_size=args.box_size,
        vary_sampling=not args.no_vary_sampling,
    )
    train(config)


if __name__ == "__main__":
    main()
