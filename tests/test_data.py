"""rsscale.data: embedded datasets, their determinism, and the file formats of the optional loaders (on fake files)."""

import os
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from rsscale.data import (
    Dataset,
    load_cifar10,
    load_dataset,
    load_digits,
    load_image_folder,
    load_mnist,
    make_synthetic,
    resample,
)


def assert_same(a: Dataset, b: Dataset):
    assert a.name == b.name and a.num_classes == b.num_classes and a.meta == b.meta
    for key in ("x_train", "y_train", "x_test", "y_test"):
        assert torch.equal(getattr(a, key), getattr(b, key)), key


def in_unit_range(x: torch.Tensor) -> bool:
    return x.dtype == torch.float32 and x.min() >= 0.0 and x.max() <= 1.0


def class_mean_distance(ds: Dataset) -> float:
    means = torch.stack([ds.x_train[ds.y_train == c].mean(0) for c in range(ds.num_classes)])
    return torch.pdist(means).mean().item()


# digits


@pytest.fixture(scope="module")
def digits8():
    return load_digits()


@pytest.mark.parametrize("resolution", [8, 16, 32, 64])
def test_digits_shapes_range_and_labels(resolution):
    ds = load_digits(resolution=resolution)
    assert ds.name == "digits" and ds.num_classes == 10
    assert len(ds.x_train) + len(ds.x_test) == 1797
    assert len(ds.x_test) == pytest.approx(0.2 * 1797, abs=1)
    assert ds.x_train.shape == (len(ds.y_train), 1, resolution, resolution)
    assert ds.x_test.shape == (len(ds.y_test), 1, resolution, resolution)
    assert ds.input_shape == (1, resolution, resolution) and ds.dim == resolution**2
    assert in_unit_range(ds.x_train) and in_unit_range(ds.x_test)
    assert ds.x_train.max() == pytest.approx(1.0, abs=0.05)
    assert ds.y_train.dtype == torch.long
    for labels in (ds.y_train, ds.y_test):
        assert sorted(labels.unique().tolist()) == list(range(10))
    assert ds.meta == {"resolution": resolution, "test_fraction": 0.2, "seed": 0}


def test_digits_test_fraction_and_stratification():
    ds = load_digits(test_fraction=0.5)
    assert abs(len(ds.x_train) - len(ds.x_test)) <= 1
    counts = torch.bincount(ds.y_test, minlength=10).float() / torch.bincount(ds.y_train, minlength=10).float()
    assert torch.allclose(counts, torch.ones(10), atol=0.05)


def test_digits_values_are_sklearn_images_over_16(digits8):
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    x = torch.cat([digits8.x_train, digits8.x_test]).flatten(1).double() * 16
    y = torch.cat([digits8.y_train, digits8.y_test])
    assert torch.allclose(x, x.round(), atol=1e-4)
    ours = sorted(r + [t] for r, t in zip(x.round().long().tolist(), y.tolist(), strict=True))
    theirs = sorted(r + [t] for r, t in zip(bunch.data.astype(int).tolist(), bunch.target.tolist(), strict=True))
    assert ours == theirs


def test_digits_split_is_deterministic(digits8):
    assert_same(digits8, load_digits(seed=0))
    other = load_digits(seed=1)
    assert len(other.x_test) == len(digits8.x_test)
    assert not torch.equal(other.x_test, digits8.x_test)
    assert not torch.equal(other.y_test, digits8.y_test)


@pytest.mark.parametrize("resolution", [4, 16, 32])
def test_digits_resampling_keeps_the_content(digits8, resolution):
    ds = load_digits(resolution=resolution)
    assert torch.equal(ds.y_train, digits8.y_train)
    before = digits8.x_train.mean(dim=(1, 2, 3))
    after = ds.x_train.mean(dim=(1, 2, 3))
    assert (after - before).abs().max() < 0.05
    assert (after - before).abs().mean() < 0.01


@pytest.mark.parametrize(
    "kwargs, value",
    [
        ({"resolution": 0}, "0"),
        ({"resolution": -3}, "-3"),
        ({"test_fraction": 0.0}, "0.0"),
        ({"test_fraction": 1.0}, "1.0"),
        ({"test_fraction": 1.5}, "1.5"),
    ],
)
def test_digits_bad_arguments(kwargs, value):
    with pytest.raises(ValueError, match=f"got {value}"):
        load_digits(**kwargs)


def test_resample():
    images = torch.rand(3, 2, 8, 8)
    assert resample(images, 8) is images
    up = resample(images, 20)
    assert up.shape == (3, 2, 20, 20) and in_unit_range(up)
    down = resample(torch.ones(2, 1, 16, 16), 5)
    assert torch.allclose(down, torch.ones(2, 1, 5, 5))
    with pytest.raises(ValueError, match="got 0"):
        resample(images, 0)


# synthetic


@pytest.mark.parametrize("dim", [10, 50, 784, 100_000])
def test_synthetic_shapes_and_range(dim):
    ds = make_synthetic(dim, num_train=20, num_test=10)
    assert ds.name == "synthetic" and ds.num_classes == 2
    assert ds.x_train.shape == (20, dim) and ds.x_test.shape == (10, dim)
    assert ds.input_shape == (dim,) and ds.dim == dim
    assert in_unit_range(ds.x_train) and in_unit_range(ds.x_test)
    assert ds.y_train.dtype == torch.long and ds.y_test.dtype == torch.long
    assert ds.meta == {"dim": dim, "intrinsic_dim": 2, "separation": 4.0, "spread": 0.5, "seed": 0}


def test_synthetic_is_deterministic():
    a = make_synthetic(100, num_classes=3, num_train=60, num_test=30, seed=7)
    assert_same(a, make_synthetic(100, num_classes=3, num_train=60, num_test=30, seed=7))
    b = make_synthetic(100, num_classes=3, num_train=60, num_test=30, seed=8)
    assert not torch.equal(a.x_train, b.x_train)


@pytest.mark.parametrize("num_classes, num_train", [(2, 1000), (3, 99), (10, 50)])
def test_synthetic_labels_are_balanced(num_classes, num_train):
    ds = make_synthetic(30, num_classes=num_classes, num_train=num_train, num_test=num_classes * 4)
    assert torch.bincount(ds.y_train, minlength=num_classes).tolist() == [num_train // num_classes] * num_classes
    assert torch.bincount(ds.y_test, minlength=num_classes).tolist() == [4] * num_classes
    assert not torch.equal(ds.y_train, torch.arange(num_train) % num_classes)


@pytest.mark.parametrize("seed", range(4))
def test_synthetic_class_geometry_does_not_depend_on_dim(seed):
    small, large = (make_synthetic(dim, seed=seed) for dim in (50, 5000))
    assert class_mean_distance(small) == pytest.approx(class_mean_distance(large), rel=0.1)
    assert class_mean_distance(large) == pytest.approx(4.0, rel=0.1)
    clipped = ((small.x_train == 0) | (small.x_train == 1)).float().mean()
    assert clipped < 0.15


def test_synthetic_latents_do_not_depend_on_dim():
    # No clipping at these dims, so pairwise input distances are exactly the latent ones.
    a, b = (make_synthetic(dim, num_classes=3, intrinsic_dim=4, num_train=30, num_test=5) for dim in (1000, 100_000))
    assert torch.equal(a.y_train, b.y_train) and torch.equal(a.y_test, b.y_test)
    for x_a, x_b in ((a.x_train, b.x_train), (a.x_test, b.x_test)):
        dist_a = torch.cdist(a.x_train.double(), x_a.double())
        dist_b = torch.cdist(b.x_train.double(), x_b.double())
        assert torch.allclose(dist_a, dist_b, atol=1e-3)


def test_synthetic_is_centred_on_half_and_separated():
    ds = make_synthetic(2000, num_classes=4, intrinsic_dim=3, separation=2.0, spread=0.0, num_train=40)
    means = torch.stack([ds.x_train[ds.y_train == c][0] for c in range(4)])
    assert torch.allclose(ds.x_train, means[ds.y_train])  # spread 0: every point sits on its class mean
    assert torch.pdist(means).mean().item() == pytest.approx(2.0, rel=1e-4)
    assert torch.allclose(means.mean(0), torch.full((2000,), 0.5), atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"dim": 1, "intrinsic_dim": 2}, "intrinsic_dim=2, dim=1"),
        ({"dim": 10, "intrinsic_dim": 0}, "intrinsic_dim=0"),
        ({"dim": 10, "num_classes": 1}, "got 1"),
        ({"dim": 10, "num_train": 0}, "num_train=0"),
        ({"dim": 10, "num_test": -1}, "num_test=-1"),
        ({"dim": 10, "separation": 0.0}, "separation=0.0"),
        ({"dim": 10, "spread": -0.5}, "spread=-0.5"),
    ],
)
def test_synthetic_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_synthetic(**kwargs)


# save / load


def test_save_load_round_trip(tmp_path, digits8):
    for ds in (digits8, make_synthetic(40, num_train=10, num_test=5)):
        path = tmp_path / "nested" / ds.name / "data.pt"
        ds.save(path)
        assert_same(Dataset.load(path), ds)
        assert torch.load(path, weights_only=True)["meta"] == ds.meta
    ds = Dataset("tiny", torch.rand(2, 3, 4, 4), torch.tensor([0, 1]), torch.rand(1, 3, 4, 4), torch.tensor([1]), 2,
                 {"classes": ["a", "b"], "resolution": 4})
    ds.save(tmp_path / "tiny.pt")
    loaded = Dataset.load(str(tmp_path / "tiny.pt"))
    assert_same(loaded, ds)
    assert loaded.input_shape == (3, 4, 4) and loaded.dim == 48


# MNIST (torchvision's raw layout: uncompressed IDX files; without md5 torchvision only checks they exist)


def write_idx(path, array: np.ndarray, magic: int):
    header = np.array([magic, *array.shape], dtype=">i4").tobytes()
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def fake_mnist_images(count: int, offset: int) -> np.ndarray:
    images = np.zeros((count, 28, 28), dtype=np.uint8)
    for i in range(count):
        images[i, :, : 28 // 2] = (offset + i) * 8  # left half bright, right half dark
    return images


@pytest.fixture(scope="module")
def mnist_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("mnist")
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, count, offset in (("train", 20, 0), ("t10k", 10, 20)):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", fake_mnist_images(count, offset), 2051)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(offset, offset + count) % 10, 2049)
    return root


def test_mnist_from_raw_files(mnist_root):
    ds = load_mnist(mnist_root)
    assert ds.name == "mnist" and ds.num_classes == 10 and ds.meta == {"resolution": 28}
    assert ds.x_train.shape == (20, 1, 28, 28) and ds.x_test.shape == (10, 1, 28, 28)
    assert ds.y_train.tolist() == [i % 10 for i in range(20)]
    assert ds.y_test.tolist() == [i % 10 for i in range(20, 30)]
    assert ds.y_train.dtype == torch.long
    for x, offset in ((ds.x_train, 0), (ds.x_test, 20)):
        expected = torch.from_numpy(fake_mnist_images(len(x), offset)).float().div(255).unsqueeze(1)
        assert torch.equal(x, expected)
    assert ds.x_test[-1, 0, 0, 0] == pytest.approx(29 * 8 / 255)
    assert in_unit_range(ds.x_train)


def test_mnist_resampled(mnist_root):
    full = load_mnist(mnist_root)
    ds = load_mnist(str(mnist_root), resolution=14)
    assert ds.x_train.shape == (20, 1, 14, 14) and ds.x_test.shape == (10, 1, 14, 14)
    assert ds.meta == {"resolution": 14}
    assert torch.equal(ds.y_train, full.y_train)
    assert torch.allclose(ds.x_train.mean(dim=(1, 2, 3)), full.x_train.mean(dim=(1, 2, 3)), atol=1e-4)
    assert torch.allclose(ds.x_train[..., :6], full.x_train[..., :1, :1].expand(-1, -1, 14, 6), atol=1e-6)
    assert (ds.x_train[:, :, :, 8:] == 0).all()


def test_mnist_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent"):
        load_mnist(tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match="MNIST"):
        load_mnist(tmp_path)  # the root exists but holds no MNIST folder


# CIFAR-10


def fake_cifar_records(count: int, offset: int) -> tuple[np.ndarray, np.ndarray]:
    """Images [count, 3, 32, 32] (uint8, CHW) with a distinct pattern each, and labels."""
    images = np.zeros((count, 3, 32, 32), dtype=np.uint8)
    for i in range(count):
        k = offset + i
        images[i, k % 3] = 255  # one full channel
        images[i, (k + 1) % 3] = (np.arange(32 * 32).reshape(32, 32) + k) % 256  # row-major ramp
    return images, (np.arange(offset, offset + count) * 3) % 10


def expected_cifar(counts: list[int], offset: int = 0):
    parts, labels = [], []
    for count in counts:
        images, y = fake_cifar_records(count, offset)
        parts.append(images)
        labels.append(y)
        offset += count
    return torch.from_numpy(np.concatenate(parts)).float().div(255), torch.from_numpy(np.concatenate(labels))


TRAIN_COUNTS = [2, 1, 3, 2, 2]


def write_cifar_binary(root):
    folder = root / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    offset = 0
    for name, count in [(f"data_batch_{i + 1}.bin", c) for i, c in enumerate(TRAIN_COUNTS)] + [("test_batch.bin", 3)]:
        images, labels = fake_cifar_records(count, offset)
        records = np.concatenate([labels[:, None].astype(np.uint8), images.reshape(count, -1)], axis=1)
        (folder / name).write_bytes(records.tobytes())
        offset += count
    return folder


def check_cifar(ds: Dataset):
    assert ds.name == "cifar10" and ds.num_classes == 10
    x_train, y_train = expected_cifar(TRAIN_COUNTS)
    x_test, y_test = expected_cifar([3], offset=sum(TRAIN_COUNTS))
    assert ds.x_train.shape == (10, 3, 32, 32) and ds.x_test.shape == (3, 3, 32, 32)
    assert ds.x_train.dtype == torch.float32 and ds.y_train.dtype == torch.long
    assert torch.equal(ds.x_train, x_train) and torch.equal(ds.x_test, x_test)
    assert torch.equal(ds.y_train, y_train) and torch.equal(ds.y_test, y_test)
    first = ds.x_train[0]  # channel 0 all 255, channel 1 the ramp, channel 2 zero
    assert (first[0] == 1).all() and (first[2] == 0).all()
    assert first[1, 0, 1] == pytest.approx(1 / 255) and first[1, 1, 0] == pytest.approx(32 / 255)
    assert in_unit_range(ds.x_train) and in_unit_range(ds.x_test)


def test_cifar_binary(tmp_path):
    write_cifar_binary(tmp_path)
    check_cifar(load_cifar10(tmp_path))


def test_cifar_binary_bad_files(tmp_path):
    folder = write_cifar_binary(tmp_path)
    with open(folder / "data_batch_3.bin", "ab") as f:
        f.write(b"\0" * 100)
    with pytest.raises(ValueError, match="data_batch_3.bin"):
        load_cifar10(tmp_path)
    (folder / "data_batch_3.bin").unlink()
    with pytest.raises(FileNotFoundError, match="data_batch_3.bin"):
        load_cifar10(tmp_path)


def test_cifar_torchvision_python_format(tmp_path, monkeypatch):
    import torchvision.datasets.cifar as tv_cifar

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    offset = 0
    for name, count in [(f"data_batch_{i + 1}", c) for i, c in enumerate(TRAIN_COUNTS)] + [("test_batch", 3)]:
        images, labels = fake_cifar_records(count, offset)
        batch = {"batch_label": name, "data": images.reshape(count, -1), "labels": labels.tolist()}
        (folder / name).write_bytes(pickle.dumps(batch))
        offset += count
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"class{i}" for i in range(10)]}))
    # Fake files fail the md5 checks (of the batches and of batches.meta): keep only the existence check.
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda fpath, md5=None: os.path.isfile(fpath))
    check_cifar(load_cifar10(tmp_path))
    check_cifar(load_dataset("cifar10", root=str(tmp_path)))


def test_cifar_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent"):
        load_cifar10(tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match="cifar-10-batches-py"):
        load_cifar10(tmp_path)


# image folder


def write_png(path, size, color):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)


@pytest.fixture
def image_root(tmp_path):
    for name, size in (("a1", (40, 30)), ("a2", (30, 40)), ("a3", (64, 64))):
        write_png(tmp_path / "train" / "cat" / f"{name}.png", size, (255, 0, 0))
    for name, size in (("b1", (50, 20)), ("b2", (20, 20))):
        write_png(tmp_path / "train" / "dog" / f"{name}.png", size, (0, 0, 255))
    write_png(tmp_path / "val" / "cat" / "c1.png", (33, 45), (255, 0, 0))
    for name, size in (("d1", (40, 30)), ("d2", (16, 16))):
        write_png(tmp_path / "val" / "dog" / f"{name}.png", size, (0, 0, 255))
    return tmp_path


def test_image_folder(image_root):
    ds = load_image_folder(image_root, resolution=16)
    assert ds.name == "imagefolder" and ds.num_classes == 2
    assert ds.meta == {"resolution": 16, "classes": ["cat", "dog"]}
    assert ds.x_train.shape == (5, 3, 16, 16) and ds.x_test.shape == (3, 3, 16, 16)
    assert ds.y_train.tolist() == [0, 0, 0, 1, 1] and ds.y_test.tolist() == [0, 1, 1]
    assert in_unit_range(ds.x_train) and in_unit_range(ds.x_test)
    red, blue = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 0.0, 1.0])
    for x, y in ((ds.x_train, ds.y_train), (ds.x_test, ds.y_test)):
        colours = x.mean(dim=(2, 3))
        assert torch.allclose(colours[y == 0], red.expand(int((y == 0).sum()), 3), atol=1e-6)
        assert torch.allclose(colours[y == 1], blue.expand(int((y == 1).sum()), 3), atol=1e-6)


def test_image_folder_resolution_and_errors(image_root):
    assert load_image_folder(str(image_root), resolution=8).x_test.shape == (3, 3, 8, 8)
    with pytest.raises(FileNotFoundError, match="absent"):
        load_image_folder(image_root / "absent")
    with pytest.raises(FileNotFoundError, match="train/train"):
        load_image_folder(image_root / "train")  # no train/val inside
    write_png(image_root / "train" / "eel" / "e1.png", (10, 10), (0, 255, 0))
    with pytest.raises(ValueError, match="eel"):
        load_image_folder(image_root, resolution=8)


# dispatch


def test_load_dataset_dispatch(digits8, mnist_root, image_root, tmp_path):
    assert_same(load_dataset("digits"), digits8)
    assert_same(load_dataset("digits", resolution=16, seed=3), load_digits(resolution=16, seed=3))
    assert_same(load_dataset("synthetic", dim=30, num_train=8, num_test=4),
                make_synthetic(30, num_train=8, num_test=4))
    assert_same(load_dataset("mnist", root=mnist_root, resolution=14), load_mnist(mnist_root, resolution=14))
    assert_same(load_dataset("imagefolder", root=image_root, resolution=8), load_image_folder(image_root, 8))
    write_cifar_binary(tmp_path / "cifar")
    check_cifar(load_dataset("cifar10", root=tmp_path / "cifar"))


def test_load_dataset_unknown_name():
    with pytest.raises(ValueError, match="'imagenet'"):
        load_dataset("imagenet")
