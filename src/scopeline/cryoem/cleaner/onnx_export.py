"""Checkpoints of the cleaner's network, and their export to ONNX so inference needs only
onnxruntime.

    python -m scopeline.cryoem.cleaner.onnx_export STATE_DICT.pt OUT.onnx

A checkpoint holds one U-Net (``{"channels", "state_dict"}``) or an ensemble
(``{"members": [{"channels", "state_dict"}, ...]}``, read as :class:`model.MaxEnsemble`;
exported as one ONNX graph).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from scopeline.cryoem.cleaner.model import MaxEnsemble, UNet
from scopeline.io.atomic import atomic_path


def _unet(entry: dict) -> UNet:
    model = UNet(tuple(entry["channels"]))
    model.load_state_dict(entry["state_dict"])
    return model.eval()


def load_unet(state_path: str | Path) -> UNet | MaxEnsemble:
    """The network in eval mode from a checkpoint written by ``train.py``: a UNet, or a
    :class:`MaxEnsemble` for an ensemble checkpoint."""
    checkpoint = torch.load(state_path, map_location="cpu", weights_only=True)
    if "members" in checkpoint:
        return MaxEnsemble([_unet(entry) for entry in checkpoint["members"]]).eval()
    return _unet(checkpoint)


def load_members(state_path: str | Path) -> list[UNet]:
    """The U-Nets of a checkpoint: its members, or the one network it holds."""
    model = load_unet(state_path)
    return list(model.members) if isinstance(model, MaxEnsemble) else [model]


def save_checkpoint(model: UNet | MaxEnsemble, out_path: str | Path) -> Path:
    """Write ``model`` as a checkpoint :func:`load_unet` reads (atomic)."""
    def entry(unet: UNet) -> dict:
        return {"channels": list(unet.channels), "state_dict": unet.state_dict()}

    state = {"members": [entry(m) for m in model.members]} if isinstance(model, MaxEnsemble) else entry(model)
    with atomic_path(out_path) as tmp:
        torch.save(state, tmp)
    return Path(out_path)


def export_onnx(model: UNet | MaxEnsemble, out_path: str | Path, opset: int = 17) -> Path:
    """Write ``model`` as ONNX with dynamic batch, height and width (atomic)."""
    model = model.eval()
    example = torch.zeros(1, 1, 256, 256)
    with atomic_path(out_path) as tmp, torch.no_grad():
        torch.onnx.export(
            model,
            (example,),
            str(tmp),
            input_names=["image"],
            output_names=["logits"],
            dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"}, "logits": {0: "batch", 2: "height", 3: "width"}},
            opset_version=opset,
            dynamo=False,
        )
    return Path(out_path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("state_dict", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    export_onnx(load_unet(args.state_dict), args.out)


if __name__ == "__main__":
    main()
