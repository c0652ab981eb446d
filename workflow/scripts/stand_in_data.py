"""Stand-in data in the formats of the big configs, for running them end to end without the real files.

Writes, under ROOT:

* ``cifar10/cifar-10-batches-bin/``: CIFAR-10's binary version (five training batches and a test batch, records
  of one label byte and 3,072 CHW pixel bytes), what ``workflow/config/cifar10*.yaml`` read from ``data/cifar10``;
* ``imagenet/{train,val}/<class>/*.jpg``: an ImageNet-style tree of JPEGs of varied sizes, what
  ``workflow/config/imagenet.yaml`` reads from ``data/imagenet``.

Each class is a colour and an orientation of stripes plus noise, so that a model can learn it in an epoch: a
smoke run then certifies inputs with a nonzero radius, and the tables have something in them.  The counts
are parameters (a full-size CIFAR-10 is ``--cifar-train 10000`` per batch and ``--cifar-test 10000``).

    python workflow/scripts/stand_in_data.py ROOT [--cifar-train 2000] [--cifar-test 10000]
        [--imagenet-classes 10] [--imagenet-train 20] [--imagenet-val 30] [--seed 0]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = 10


def class_images(labels: np.ndarray, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """uint8 images [count, 3, height, width]: class k is stripes of period 4 + k at angle k pi / 10 in colour k,
    plus noise."""
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    images = np.empty((len(labels), 3, height, width), dtype=np.uint8)
    for i, k in enumerate(labels):
        angle = np.pi * k / CLASSES
        stripes = 0.5 + 0.5 * np.sin(2 * np.pi * (rows * np.sin(angle) + cols * np.cos(angle)) / (4 + k))
        colour = 0.3 + 0.7 * np.array([(k % 3) / 2, (k % 5) / 4, (k % 2)], dtype=np.float32)
        pixels = colour[:, None, None] * stripes[None] + rng.normal(0, 0.15, (3, height, width))
        images[i] = np.clip(pixels * 255, 0, 255).astype(np.uint8)
    return images


def write_cifar10(folder: Path, per_train_batch: int, test: int, rng: np.random.Generator) -> None:
    """CIFAR-10's binary batches: data_batch_1..5.bin of ``per_train_batch`` records each and test_batch.bin."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, count in [(f"data_batch_{b}.bin", per_train_batch) for b in range(1, 6)] + [("test_batch.bin", test)]:
        labels = rng.integers(0, CLASSES, count).astype(np.uint8)
        records = np.concatenate([labels[:, None], class_images(labels, 32, 32, rng).reshape(count, -1)], axis=1)
        (folder / name).write_bytes(records.tobytes())


def write_image_folder(root: Path, classes: int, per_class: dict[str, int], rng: np.random.Generator) -> None:
    """``root/<split>/n<class>/<i>.jpg`` with the shorter side between 240 and 320 pixels (resized by the loader)."""
    for split, count in per_class.items():
        for k in range(classes):
            folder = root / split / f"n{k:08d}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                height, width = (int(v) for v in rng.integers(240, 321, 2))
                chw = class_images(np.array([k % CLASSES]), height, width, rng)[0]
                Image.fromarray(chw.transpose(1, 2, 0)).save(folder / f"{i}.jpg", quality=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--cifar-train", type=int, default=2000, help="records per training batch (5 batches)")
    parser.add_argument("--cifar-test", type=int, default=10000, help="test records")
    parser.add_argument("--imagenet-classes", type=int, default=10)
    parser.add_argument("--imagenet-train", type=int, default=20, help="training images per class")
    parser.add_argument("--imagenet-val", type=int, default=30, help="validation images per class")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    write_cifar10(args.root / "cifar10" / "cifar-10-batches-bin", args.cifar_train, args.cifar_test, rng)
    write_image_folder(args.root / "imagenet", args.imagenet_classes,
                       {"train": args.imagenet_train, "val": args.imagenet_val}, rng)
    print(f"stand-in data under {args.root}: cifar10 ({5 * args.cifar_train} train, {args.cifar_test} test), "
          f"imagenet ({args.imagenet_classes} classes, {args.imagenet_train} + {args.imagenet_val} per class)")


if __name__ == "__main__":
    main()
