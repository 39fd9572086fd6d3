"""Train (or fine-tune) the bad-region U-Net on simulated and real labelled micrographs.

The shipped weights (see ``weights/README.md``): fine-tune the simulation-only network on
the labelled real micrographs of ``shared/data/micrographs`` with ``SHIPPED_RECIPE``::

    python -m scopeline.cryoem.cleaner.train shipped --out runs/cleaner

(``--hold-out NAME`` leaves a micrograph out: ``benchmarks/clean_lomo.py`` trains the
leave-one-micrograph-out folds of the same recipe.)

Your own labelled micrographs: ``fine-tune --images DIR --labels DIR --box-size PX``
(or ``scopeline clean-train``; label conventions in ``realdata.py``).

Train from scratch on ``synth.py`` data (reproducible from ``--seed`` for a fixed
``--steps``; ``--minutes`` stops early on a time budget)::

    python -m scopeline.cryoem.cleaner.train --out runs/cleaner --minutes 40 --steps 1500

Fine-tune the shipped weights on your own labelled micrographs (mask: same shape as the
micrograph, 1 = bad region, MRC or TIFF), mixed with simulated data::

    python -m scopeline.cryoem.cleaner.train fine-tune --pair mic1.mrc mask1.mrc \\
        --pair mic2.mrc mask2.mrc --box-size 200 --out runs/tuned --minutes 20

The output folder gets ``cleaner_unet.pt`` (state dict), ``cleaner_unet.onnx`` and
``train_log.json``. With ``--members N`` (the shipped recipe: 3), N networks are trained
from seeds ``seed``, ``seed + 1``, ... into ``member-K/`` (an interrupted run resumes at
the first member without a log) and the output is their ensemble (``model.MaxEnsemble``).
Copy the ONNX file over ``weights/cleaner_unet.onnx`` or pass it with
``CleanParams(model=...)`` to use it.

Seeds: training images use ``seed * 1_000_000 + i``; validation uses
``VALIDATION_SEED + i`` and held-out evaluation ``HELD_OUT_SEED + i``, never trained on.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from scopeline.cryoem.cleaner.model import MaxEnsemble, UNet
from scopeline.cryoem.cleaner.onnx_export import export_onnx, load_members, load_unet, save_checkpoint
from scopeline.cryoem.cleaner.preprocess import downsample, prepare, robust_normalise
from scopeline.cryoem.cleaner.synth import simulate_micrograph
from scopeline.io.atomic import write_json

VALIDATION_SEED = 1_500_000_000
HELD_OUT_SEED = 2_000_000_000
WEIGHTS = Path(__file__).parent / "weights"

# The recipe of the shipped weights (``train shipped --out DIR``; written once, here):
# fine-tune the simulation-only network on the labelled real micrographs of ``--real``,
# with pasted carbon film that replaces the ice, three times over (seeds 2, 3, 4): the
# shipped model is the ensemble of the three (model.MaxEnsemble; docs/clean.md, "Session 7").
SHIPPED_RECIPE = (
    "--real", "../shared/data/micrographs", "--init", str(WEIGHTS / "cleaner_unet_simulated.pt"),
    "--steps", "600", "--minutes", "60", "--lr", "1e-3", "--seed", "2", "--batch", "8", "--crop", "112",
    "--window", "176", "--real-fraction", "0.7", "--buffer", "24", "--refresh-every", "10", "--threads", "1",
    "--carbon", "film", "--carbon-share", "0.35", "--film-darker", "1", "--no-shade-real-bad", "--bad-oversample", "3",
    "--members", "3",
)


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
    real: Path | None = None  # shared/data/micrographs: EMPIAR-10017 + CryoPPP train split
    hold_out: list[str] = field(default_factory=list)  # micrograph names never trained on
    images: Path | None = None  # user micrographs (with ``labels``)
    labels: Path | None = None
    label_format: str = "classes"  # see realdata.labels_to_target
    real_fraction: float = 0.75  # share of each batch from real micrographs, if any
    window: int = 192  # real windows are cut, augmented and normalised at this size
    # carbon and shading of real windows (see augment.paste_defects / vary_look)
    carbon: str = "overlay"  # "film": pasted carbon replaces the ice, as on real micrographs
    carbon_share: float = 0.35  # share of pasted defects that are carbon film
    film_grain: str = "fine"  # "spectrum": film grain with the ice's own power spectrum (augment._carbon_film)
    film_reach: float = 1.3  # pasted film reaches 0.15 to this many window sides in (< 1: its edge always in view)
    film_darker: float = 0.85  # share of pasted "film" carbon darker than the ice (the rest brighter)
    shading_max: float = 1.5  # soft brighter/darker patches up to this many IQR
    thick_ice: float = 0.0  # share of the shading that is thicker ice (particles fade; augment.thicker_ice)
    shade_real_bad: bool = True  # False: no soft patches on windows holding labelled carbon/ice
    bad_oversample: float = 1.0  # real micrographs with labelled bad regions drawn this many times as often
    norm_context: int = 0  # > window: real windows are augmented and normalised at this size, then cut to window
    ema: float = 0.0  # > 0: the weights written are an exponential moving average (this decay per step)
    members: int = 1  # > 1: an ensemble of networks from seeds seed, seed + 1, ... (train_ensemble)


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


def init_unet(path: Path, channels: tuple[int, ...] | None = None, member: int = 0) -> UNet:
    """The checkpoint at ``path`` (of an ensemble checkpoint, member ``member`` modulo their
    number); with more ``channels`` levels than it has (the same widths first), a deeper
    U-Net whose outer levels start from the checkpoint and whose new inner levels start at
    random (more context: each level doubles the receptive field of the bottleneck)."""
    members = load_members(path)
    checkpoint = members[member % len(members)]
    if channels is None or tuple(channels) == checkpoint.channels:
        return checkpoint
    if tuple(channels[: len(checkpoint.channels)]) != checkpoint.channels:
        from scopeline.errors import ConfigError

        raise ConfigError("--channels", f"{tuple(channels)} does not extend the checkpoint's {checkpoint.channels}",
                          "give the checkpoint's widths first, then the new levels")
    model = UNet(tuple(channels))
    added = len(channels) - len(checkpoint.channels)
    state = model.state_dict()
    for key, value in checkpoint.state_dict().items():
        if key.startswith("up."):  # decoder blocks are numbered from the innermost level
            index, rest = key[3:].split(".", 1)
            key = f"up.{int(index) + added}.{rest}"
        if key in state and state[key].shape == value.shape:
            state[key] = value
    model.load_state_dict(state)
    return model


class WeightAverage:
    """Exponential moving average of a network's weights and batch-norm statistics
    (``decay`` per step). The average of the last few hundred steps generalises better
    and varies less from one training to the next than the last step's weights
    (Polyak & Juditsky 1992, doi:10.1137/0330046)."""

    def __init__(self, model: torch.nn.Module, decay: float):
        import copy

        self.model = copy.deepcopy(model)
        self.decay = float(decay)
        self.steps = 0

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.steps += 1
        decay = min(self.decay, (1 + self.steps) / (10 + self.steps))  # short memory at the start
        for mine, theirs in zip(self.model.state_dict().values(), model.state_dict().values()):
            if mine.dtype.is_floating_point:
                mine.lerp_(theirs, 1 - decay)
            else:
                mine.copy_(theirs)


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Binary cross-entropy plus soft Dice on the bad class; ``weight`` 0 ignores a pixel."""
    if weight is None:
        weight = torch.ones_like(target)
    bce = (F.binary_cross_entropy_with_logits(logits, target, reduction="none") * weight).sum() / weight.sum().clamp(min=1)
    prob = torch.sigmoid(logits) * weight
    target = target * weight
    dice = 1 - (2 * (prob * target).sum() + 1) / (prob.sum() + target.sum() + 1)
    return bce + 0.5 * dice


def real_items(config: TrainConfig) -> list:
    """Real labelled micrographs to train on: the shared sets (less ``hold_out``; CryoPPP
    train split, clean ones) and/or the user's ``images``/``labels`` folders."""
    from scopeline.cryoem.cleaner.realdata import load_cryoppp, load_empiar10017, pair_folders, read_labelled

    items = []
    if config.real is not None:
        root = Path(config.real)
        if not (root / "empiar10017").is_dir():
            from scopeline.errors import InputError

            raise InputError(root, "no empiar10017/ folder here", "give --real .../shared/data/micrographs")
        items += load_empiar10017(root) + [m for m in load_cryoppp(root, ("train",)) if m.clean]
    if config.images is not None:
        if config.box_size is None:
            from scopeline.errors import ConfigError

            raise ConfigError("--box-size", "training on --images/--labels needs the particle box size", "give --box-size PX")
        items += [read_labelled(m, k, config.box_size, config.label_format) for m, k in pair_folders(config.images, config.labels)]
    from scopeline.cryoem.cleaner.augment import reduce

    return [reduce(m) for m in items if m.name not in set(config.hold_out)]


def real_crop(rng: np.random.Generator, item, crop: int, window: int,
              config: TrainConfig | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One augmented, normalised training crop (image, bad fraction, weight) of a real
    item (carbon and shading options from ``config``; defaults without)."""
    from scopeline.cryoem.cleaner.augment import paste_defects, sample_window, vary_look

    config = config or TrainConfig(out=Path("."))
    context = max(window, config.norm_context)
    image, mask, weight = sample_window(rng, item, context)
    shading = 0.7
    if item.clean and rng.random() < 0.6:
        image, mask = paste_defects(rng, image, mask, carbon=config.carbon, carbon_share=config.carbon_share,
                                    film_darker=config.film_darker, film_grain=config.film_grain,
                                    film_reach=config.film_reach)
    elif not config.shade_real_bad and (mask > 0.5).any():
        shading = 0.0  # a labelled darker region must not be taught as mere shading
    image = robust_normalise(vary_look(rng, image, shading=shading, shading_max=config.shading_max,
                                         thick_ice=config.thick_ice))
    if context > window:  # normalised over the context (closer to a whole micrograph), keep the middle
        o = (context - window) // 2
        image, mask, weight = (a[o : o + window, o : o + window] for a in (image, mask, weight))
    y, x = (rng.integers(0, window - crop + 1) for _ in range(2))
    image, mask, weight = (a[y : y + crop, x : x + crop] for a in (image, mask, weight))
    k = int(rng.integers(4))
    image, mask, weight = (np.rot90(a, k) for a in (image, mask, weight))
    if rng.random() < 0.5:
        image, mask, weight = (a[:, ::-1] for a in (image, mask, weight))
    return image, mask, weight


def train(config: TrainConfig, log=lambda text: print(text, flush=True), init_member: int = 0) -> dict:
    """Train one network (``config.members`` is not read: see :func:`train_ensemble`),
    starting from member ``init_member`` of ``config.init``; write the state dict, ONNX
    export and log to ``config.out``; return the log."""
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    rng = np.random.default_rng(config.seed)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)

    model = init_unet(config.init, config.channels, init_member) if config.init else UNet(config.channels)
    model.train()
    averaged = WeightAverage(model, config.ema) if config.ema > 0 else None
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=config.lr, total_steps=config.steps)
    user = [load_pair(m, k, config.box_size) for m, k in config.pairs] if config.pairs else []
    real = real_items(config)
    log(f"real micrographs: {[m.name for m in real]}")
    odds = np.array([config.bad_oversample if len(m.bad_pixels) else 1.0 for m in real])
    draw = odds / odds.sum() if len(real) else None

    validation = [_simulate(VALIDATION_SEED + i, config.image_size, config.vary_sampling) for i in range(8)]
    base_seed = config.seed * 1_000_000
    if config.buffer <= 0 and not (real or user):
        from scopeline.errors import ConfigError

        raise ConfigError("buffer", "no training data: no simulated buffer and no real micrographs", "give --real or --images/--labels")
    simulated = config.buffer > 0
    pool = multiprocessing.get_context("spawn").Pool(1) if simulated else None
    ahead = 8
    job = (config.image_size, config.vary_sampling)
    pending = [pool.apply_async(_simulate, (base_seed + i, *job)) for i in range(config.buffer + ahead)] if simulated else []
    buffer = [pending[i].get() for i in range(config.buffer)]
    next_image = config.buffer

    start = time.monotonic()
    history = []
    step = 0
    try:
        for step in range(1, config.steps + 1):
            if simulated and step % config.refresh_every == 0:
                buffer[next_image % config.buffer] = pending[next_image].get()
                pending.append(pool.apply_async(_simulate, (base_seed + next_image + ahead, *job)))
                pending[next_image] = None
                next_image += 1
            images, masks, weights = [], [], []
            for _ in range(config.batch):
                if real and (not simulated or rng.random() < config.real_fraction):
                    image, mask, weight = real_crop(rng, real[rng.choice(len(real), p=draw) if config.bad_oversample != 1 else rng.integers(len(real))], config.crop, config.window, config)
                else:
                    source = user if user and (not simulated or rng.random() < config.user_fraction) else buffer
                    image, mask = _random_crop(rng, *source[rng.integers(len(source))], config.crop)
                    weight = np.ones_like(mask)
                images.append(image)
                masks.append(mask)
                weights.append(weight)
            x = torch.from_numpy(np.stack(images)[:, None].astype(np.float32))
            y = torch.from_numpy(np.stack(masks)[:, None].astype(np.float32))
            w = torch.from_numpy(np.stack(weights)[:, None].astype(np.float32))
            loss = segmentation_loss(model(x), y, w)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            if averaged is not None:
                averaged.update(model)
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
        if pool is not None:
            pool.terminate()

    if averaged is not None:
        model = averaged.model
    model.eval()
    summary = {
        "config": _config_record(config),
        "pairs": [[str(m), str(k)] for m, k in config.pairs],
        "real_micrographs": [m.name for m in real],
        "steps_done": step,
        "seconds": round(time.monotonic() - start, 1),
        "validation_loss": validation_loss(model, validation),
        "history": history,
    }
    save_checkpoint(model, out / "cleaner_unet.pt")
    export_onnx(model, out / "cleaner_unet.onnx")
    write_json(out / "train_log.json", summary)
    return summary


def _config_record(config: TrainConfig) -> dict:
    return {k: str(v) if isinstance(v, Path) else v for k, v in vars(config).items() if k != "pairs"}


def _jsonable(value):
    """``value`` as it reads back from ``train_log.json`` (tuples become lists)."""
    return json.loads(json.dumps(value))


def train_ensemble(config: TrainConfig, log=lambda text: print(text, flush=True)) -> dict:
    """Train ``config.members`` networks and write their :class:`MaxEnsemble` to ``config.out``.

    Member ``k`` is :func:`train` with seed ``config.seed + k``, starting from member ``k``
    of an ensemble ``config.init``, into ``out/member-k``, with ``config.minutes /
    members`` minutes; a member whose log exists is not trained again (an interrupted run
    resumes; one trained with other options is an error). One member: :func:`train`.
    Returns the log (``members``: the members' logs; ``steps_done``: their sum).
    """
    if config.members <= 1:
        return train(config, log)
    out = Path(config.out)
    logs = []
    for k in range(config.members):
        member = replace(config, out=out / f"member-{k}", seed=config.seed + k, members=1,
                         minutes=config.minutes / config.members)
        done = member.out / "train_log.json"
        if done.exists():
            logs.append(json.loads(done.read_text()))
            expected, found = _config_record(member), logs[-1]["config"]
            differ = sorted(key for key in expected if key not in ("out", "minutes")  # a cap, not the recipe
                            and key in found and found[key] != _jsonable(expected[key]))
            if differ:
                from scopeline.errors import ConfigError

                raise ConfigError(member.out, f"holds a member trained with other options ({', '.join(differ)})",
                                  "delete that folder or choose another --out")
            log(f"member {k}: trained already ({member.out})")
        else:
            log(f"member {k}: seed {member.seed}")
            logs.append(train(member, log, init_member=k))
    ensemble = MaxEnsemble([load_unet(out / f"member-{k}" / "cleaner_unet.pt") for k in range(config.members)])
    summary = {"config": _config_record(config), "real_micrographs": logs[0]["real_micrographs"],
               "steps_done": sum(m["steps_done"] for m in logs), "seconds": round(sum(m["seconds"] for m in logs), 1),
               "members": logs}
    save_checkpoint(ensemble, out / "cleaner_unet.pt")
    export_onnx(ensemble, out / "cleaner_unet.onnx")
    write_json(out / "train_log.json", summary)
    return summary


def fine_tune_on_labels(
    images: Path,
    labels: Path,
    out: Path,
    box_size: float,
    label_format: str = "classes",
    steps: int = 300,
    minutes: float = 30.0,
    init: Path | None = None,
    seed: int = 0,
    threads: int = 2,
    log=lambda text: print(text, flush=True),
    members: int | None = None,
) -> dict:
    """Fine-tune the shipped model (or ``init``) on a facility's own labelled micrographs.

    ``images``/``labels``: folders matched by stem (see ``realdata.pair_folders``); labels
    follow ``label_format`` (``realdata.labels_to_target``); ``box_size`` is the particle
    box in pixels of those micrographs. Three quarters of each batch are augmented windows
    of the user's micrographs, one quarter simulated micrographs (so the model keeps what
    it knew). ``members``: networks fine-tuned, each from its own member of ``init``
    (default: as many as ``init`` holds; the shipped weights hold 2). Writes
    ``out/cleaner_unet.onnx`` (use it with ``--model``), ``.pt`` and ``train_log.json``;
    returns the log.
    """
    init = Path(init) if init else Path(__file__).parent / "weights" / "cleaner_unet.pt"
    config = TrainConfig(
        out=Path(out), minutes=minutes, steps=steps, seed=seed, lr=5e-4, threads=threads,
        init=init, images=Path(images), labels=Path(labels), box_size=box_size, label_format=label_format,
        real_fraction=0.75, buffer=16, refresh_every=10, members=members or len(load_members(init)),
    )
    return train_ensemble(config, log)


def validation_loss(model: UNet, validation: list[tuple[np.ndarray, np.ndarray]]) -> float:
    was_training = model.training
    model.eval()
    losses = []
    with torch.no_grad():
        for image, mask in validation:  # sizes differ; U-Net sides must be multiples of model.multiple
            h, w = image.shape[0] // model.multiple * model.multiple, image.shape[1] // model.multiple * model.multiple
            x = torch.from_numpy(np.ascontiguousarray(image[:h, :w])[None, None])
            y = torch.from_numpy(np.ascontiguousarray(mask[:h, :w])[None, None])
            losses.append(float(segmentation_loss(model(x), y)))
        value = float(np.mean(losses))
    model.train(was_training)
    return round(value, 5)


def parse_config(argv: list[str]) -> TrainConfig:
    """The :class:`TrainConfig` of a command line (``shipped`` expands to ``SHIPPED_RECIPE``)."""
    argv = list(argv)
    if argv[:1] == ["shipped"]:  # the shipped recipe; later options (--out, --hold-out, --real) add to it
        argv = ["train", *SHIPPED_RECIPE, *argv[1:]]
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", nargs="?", choices=["train", "fine-tune", "shipped"], default="train",
                        help="shipped: the recipe of the shipped weights (SHIPPED_RECIPE)")
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
    parser.add_argument("--real", type=Path, default=None, help="shared/data/micrographs: train on its labelled real micrographs")
    parser.add_argument("--hold-out", action="append", default=[], metavar="NAME", help="micrograph (stem) never trained on")
    parser.add_argument("--images", type=Path, default=None, help="folder of your micrographs (MRC/TIFF/PNG/JPG)")
    parser.add_argument("--labels", type=Path, default=None, help="folder of label masks, named like the micrographs")
    parser.add_argument("--label-format", choices=["classes", "binary"], default="classes")
    parser.add_argument("--real-fraction", type=float, default=0.75, help="share of each batch from real micrographs")
    parser.add_argument("--window", type=int, default=192, help="real windows are augmented and normalised at this size")
    parser.add_argument("--carbon", choices=["overlay", "film"], default="overlay",
                        help="pasted carbon: overlay on the ice, or film replacing it (augment.paste_defects)")
    parser.add_argument("--carbon-share", type=float, default=0.35, help="share of pasted defects that are carbon")
    parser.add_argument("--film-darker", type=float, default=0.85,
                        help="share of pasted film carbon darker than the ice (the rest brighter)")
    parser.add_argument("--film-grain", choices=["fine", "spectrum"], default="fine",
                        help="film carbon's grain: fine noise, or the ice's own power spectrum with random phases")
    parser.add_argument("--film-reach", type=float, default=1.3,
                        help="pasted film reaches 0.15 to this many window sides in (< 1: its edge always in view)")
    parser.add_argument("--shading-max", type=float, default=1.5, help="soft brighter/darker patches up to this many IQR")
    parser.add_argument("--thick-ice", type=float, default=0.0,
                        help="share of the soft patches that are thicker ice: darker, particles faded (not bad)")
    parser.add_argument("--no-shade-real-bad", action="store_true",
                        help="no soft patches on real windows holding labelled carbon/ice")
    parser.add_argument("--bad-oversample", type=float, default=1.0,
                        help="real micrographs with labelled carbon/ice drawn this many times as often")
    parser.add_argument("--norm-context", type=int, default=0,
                        help="real windows are augmented and normalised at this size (> --window), then cut to --window")
    parser.add_argument("--ema", type=float, default=0.0,
                        help="write the exponential moving average of the weights (decay per step, e.g. 0.995)")
    parser.add_argument("--channels", type=int, nargs="+", default=None,
                        help="U-Net widths per level (default 8 16 32 64; more levels than --init: see init_unet)")
    parser.add_argument("--members", type=int, default=None,
                        help="train this many networks (seeds --seed, --seed + 1, ...) and write their ensemble "
                             "(default 1; fine-tune: as many as --init holds)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (results depend on it)")
    parser.add_argument("--buffer", type=int, default=160, help="simulated micrographs kept for cropping")
    parser.add_argument("--refresh-every", type=int, default=2, help="steps between two new simulated micrographs")
    args = parser.parse_args(argv)

    fine_tune = args.mode == "fine-tune"
    if (args.images is None) != (args.labels is None):
        parser.error("--images and --labels go together")
    if fine_tune and (not (args.pair or args.images) or args.box_size is None):
        parser.error("fine-tune needs --images DIR --labels DIR (or --pair MICROGRAPH MASK) and --box-size")
    init = args.init
    if fine_tune and init is None:
        init = Path(__file__).parent / "weights" / "cleaner_unet.pt"
    return TrainConfig(
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
        real=args.real,
        hold_out=args.hold_out,
        images=args.images,
        labels=args.labels,
        label_format=args.label_format,
        real_fraction=args.real_fraction,
        buffer=args.buffer,
        refresh_every=args.refresh_every,
        threads=args.threads,
        window=args.window,
        carbon=args.carbon,
        carbon_share=args.carbon_share,
        film_darker=args.film_darker,
        film_grain=args.film_grain,
        film_reach=args.film_reach,
        shading_max=args.shading_max,
        thick_ice=args.thick_ice,
        shade_real_bad=not args.no_shade_real_bad,
        bad_oversample=args.bad_oversample,
        norm_context=args.norm_context,
        ema=args.ema,
        members=args.members or (len(load_members(init)) if fine_tune else 1),
        **({"channels": tuple(args.channels)} if args.channels else {}),
    )


def main(argv: list[str] | None = None) -> None:
    import sys

    train_ensemble(parse_config(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    main()
