"""Export a trained U-Net to ONNX so inference needs only onnxruntime.

    python -m scopeline.cryoem.cleaner.onnx_export STATE_DICT.pt OUT.onnx
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from scopeline.cryoem.cleaner.model import UNet
from scopeline.io.atomic import atomic_path


def load_unet(state_path: str | Path) -> UNet:
    """A UNet in eval mode from a checkpoint written by ``train.py``."""
    checkpoint = torch.load(state_path, map_location="cpu", weights_only=True)
    model = UNet(tuple(checkpoint["channels"]))
    model.load_state_dict(checkpoint["state_dict"])
    return model.eval()


def export_onnx(model: UNet, out_path: str | Path, opset: int = 17) -> Path:
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
