"""The CIFAR ResNet of He et al. (rsscale.models.ResNet): depth 6n + 2, output shape, size."""

import pytest
import torch

from rsscale.models import build_model


def test_resnet_depth_shape_and_size():
    torch.manual_seed(0)
    model = build_model("resnet", depth=20, input_shape=[3, 32, 32], dim=3072, num_classes=7)
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 7)
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(0.27e6, rel=0.02)
    assert model.arch == "resnet" and model.input_shape == (3, 32, 32)
    for depth in (21, 2, 20.0):
        with pytest.raises(ValueError, match=f"6n \\+ 2.*got {depth!r}"):
            build_model("resnet", depth=depth)
    with pytest.raises(ValueError, match="dim = 100"):
        build_model("resnet", depth=8, input_shape=[3, 8, 8], dim=100)


def test_resnet_trains_from_the_cli_and_round_trips(tmp_path):
    """``rsscale train --arch resnet`` fills in shape, classes and normalization from the data; the checkpoint
    rebuilds the same network."""
    from rsscale.cli import main
    from rsscale.models import load_checkpoint

    data, out = tmp_path / "digits.pt", tmp_path / "resnet.pt"
    assert main(["data", "--dataset", "digits", "--params", '{"resolution": 8}', "--out", str(data)]) == 0
    assert main(["train", "--data", str(data), "--arch", "resnet", "--arch-params", '{"depth": 8}', "--sigma", "0.25",
                 "--epochs", "1", "--threads", "1", "--quiet", "--out", str(out)]) == 0
    model, meta = load_checkpoint(out)
    assert meta["config"]["input_shape"] == [1, 8, 8] and meta["config"]["num_classes"] == 10
    assert model(torch.rand(3, 1, 8, 8)).shape == (3, 10)
