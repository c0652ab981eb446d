"""Hostile input: every bad argument, file or config is refused with one clear line and leaves nothing behind.

Each CLI case runs ``rsscale.cli.main`` in-process and checks four things: the
exit status is 2, stderr is exactly one line ``rsscale: error: ...`` holding a
distinctive piece of the message, no traceback is printed, and nothing exists
under the folder of the ``--out`` path afterwards.  The workflow cases check
that ``snakemake`` refuses a bad config before any job runs.
"""

import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from rsscale.cli import main
from rsscale.models import load_checkpoint

REPO = Path(__file__).resolve().parents[1]
SMALL = '{"n0": 10, "n": 50, "batch_size": 100}'


def _touch(path):
    """What a malicious checkpoint would run on load; the marker file proves it never ran."""
    Path(path).write_text("executed")
    return {}


class Payload:
    """A custom object whose unpickling calls :func:`_touch`."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return _touch, (self.marker,)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    f = {name: root / f"{name}.pt" for name in ("d8", "d16", "m", "nan", "label", "noise", "truncated", "empty",
                                                 "tampered", "state_dict", "plain_dict", "pickled")}
    assert main(["data", "--dataset", "digits", "--params", '{"resolution": 8}', "--out", str(f["d8"])]) == 0
    assert main(["data", "--dataset", "digits", "--params", '{"resolution": 16}', "--out", str(f["d16"])]) == 0
    threads = torch.get_num_threads()
    assert main(["train", "--data", str(f["d8"]), "--sigma", "0.25", "--epochs", "1", "--arch-params",
                 '{"width": 4, "hidden": 8}', "--out", str(f["m"]), "--quiet", "--device", "cpu",
                 "--threads", "1"]) == 0
    torch.set_num_threads(threads)

    payload = torch.load(f["d8"], weights_only=True)
    nan = dict(payload, x_test=payload["x_test"].clone())
    nan["x_test"][7, 0, 3, 3] = float("nan")
    torch.save(nan, f["nan"])
    label = dict(payload, y_test=payload["y_test"].clone())
    label["y_test"][0] = 99
    torch.save(label, f["label"])
    f["noise"].write_bytes(random.Random(0).randbytes(4096))

    checkpoint = f["m"].read_bytes()
    f["truncated"].write_bytes(checkpoint[: len(checkpoint) // 2])
    f["empty"].write_bytes(b"")
    f["tampered"].write_bytes(checkpoint)
    Path(f"{f['tampered']}.sha256").write_text("0" * 64 + "  tampered.pt\n")
    state = torch.load(f["m"], weights_only=True)["state_dict"]
    torch.save(state, f["state_dict"])
    torch.save({"weights": [1.0, 2.0], "epoch": 3}, f["plain_dict"])
    f["marker"] = root / "payload-ran"
    torch.save({"format": "rsscale-checkpoint-v1", "meta": Payload(f["marker"])}, f["pickled"])
    armed = root / "armed.pt"  # the same payload does run when unpickling is allowed: the refusal is what stops it
    torch.save({"meta": Payload(root / "armed-ran")}, armed)
    torch.load(armed, weights_only=False)
    assert (root / "armed-ran").exists()
    f["missing"] = root / "no-such-file.pt"
    return {k: str(v) for k, v in f.items()}


def certify(data="d8", checkpoint="m", params=SMALL, *extra):
    return lambda f, out: ["certify", "--data", f.get(data, data), "--checkpoint", f.get(checkpoint, checkpoint),
                           "--params", params, "--out", out, "--quiet", "--device", "cpu", *extra]


def train(*extra, data="d8"):
    return lambda f, out: ["train", "--data", f[data], "--sigma", "0.25", "--epochs", "1", "--out", out, "--quiet",
                           "--device", "cpu", *extra]


def data(dataset, params="{}"):
    return lambda f, out: ["data", "--dataset", dataset, "--params", params, "--out", out]


CASES = {
    # methods and their parameters
    "unknown method": (certify("d8", "m", SMALL, "--method", "nope"), "unknown method 'nope'"),
    "negative sigma": (certify("d8", "m", SMALL, "--sigma", "-0.5"), "sigma must be a finite number > 0, got -0.5"),
    "zero sigma": (certify("d8", "m", SMALL, "--sigma", "0"), "sigma must be a finite number > 0, got 0.0"),
    "NaN sigma": (certify("d8", "m", SMALL, "--sigma", "nan"), "sigma must be a finite number > 0, got nan"),
    "n0 > n": (certify("d8", "m", '{"n0": 100, "n": 50}'), "n0 (selection samples, 100) must not exceed n"),
    "n = 0": (certify("d8", "m", '{"n0": 10, "n": 0}'), "n must be an integer >= 1, got 0"),
    "fractional n0": (certify("d8", "m", '{"n0": 2.5, "n": 50}'), "n0 must be an integer >= 1, got 2.5"),
    "alpha = 0": (certify("d8", "m", '{"n0": 10, "n": 50, "alpha": 0}'), "alpha must lie strictly between 0 and 1"),
    "alpha > 1": (certify("d8", "m", '{"n0": 10, "n": 50, "alpha": 1.5}'), "alpha must lie strictly between 0 and 1"),
    "alpha NaN": (certify("d8", "m", '{"n0": 10, "n": 50, "alpha": NaN}'), "got nan"),
    "params not JSON": (certify("d8", "m", "{n0: 10"), "expected a JSON object"),
    "params a list": (certify("d8", "m", "[10, 50]"), "expected a JSON object"),
    "unknown method parameter": (certify("d8", "m", '{"n0": 10, "n": 50, "samples": 9}'),
                                 "bad parameters for method 'cohen'"),
    "unknown noise": (certify("d8", "m", '{"n0": 10, "n": 50, "noise": "cauchy"}'), "unknown noise family 'cauchy'"),
    "--skip 0": (certify("d8", "m", SMALL, "--skip", "0"), "--skip must be >= 1, got 0"),
    "--max-inputs -1": (certify("d8", "m", SMALL, "--max-inputs", "-1"), "--max-inputs must be >= 1, got -1"),
    "--pack 0": (certify("d8", "m", SMALL, "--pack", "0"), "--pack must be >= 1, got 0"),
    # dataset files
    "missing data file": (certify("missing"), "no dataset file"),
    "data file of random bytes": (certify("noise"), "is not a readable dataset file"),
    "checkpoint given as data": (certify("m"), "is not an rsscale dataset file"),
    "NaN in x_test": (certify("nan"), "x_test contains NaN or infinite values"),
    "label out of range": (certify("label"), "y_test holds labels outside [0, 10)"),
    "input shape mismatch": (certify("d16", "m"), "takes inputs of shape (1, 8, 8), but the dataset"),
    # checkpoints
    "missing checkpoint": (certify("d8", "missing"), "no checkpoint at"),
    "truncated checkpoint": (certify("d8", "truncated"), "is not a readable checkpoint"),
    "empty checkpoint": (certify("d8", "empty"), "is not a readable checkpoint"),
    "sha256 mismatch": (certify("d8", "tampered"), "does not match its sha256 file"),
    "plain state dict": (certify("d8", "state_dict"), "is not an rsscale checkpoint"),
    "arbitrary dict": (certify("d8", "plain_dict"), "is not an rsscale checkpoint"),
    "pickled object": (certify("d8", "pickled"), "weights_only loading does not allow"),
    "dataset given as checkpoint": (certify("d8", "d8"), "is not an rsscale checkpoint"),
    # training
    "unknown architecture": (train("--arch", "resnet9000"), "unknown architecture 'resnet9000'"),
    "arch params not JSON": (train("--arch-params", "{width: 4}"), "expected a JSON object"),
    "unknown arch parameter": (train("--arch-params", '{"depth": 4}'), "unexpected keyword argument 'depth'"),
    "--epochs 0": (train("--epochs", "0"), "--epochs must be >= 1, got 0"),
    "negative training sigma": (train("--sigma", "-1"), "sigma must be a finite number >= 0, got -1.0"),
    "NaN training sigma": (train("--sigma", "nan"), "sigma must be a finite number >= 0, got nan"),
    "train on NaN data": (train(data="nan"), "x_test contains NaN or infinite values"),
    # building datasets
    "unknown dataset": (data("imagenet21k"), "unknown dataset 'imagenet21k'"),
    "MNIST folder missing": (data("mnist", '{"root": "/nonexistent"}'), "MNIST: no folder /nonexistent/MNIST"),
    "CIFAR-10 folder missing": (data("cifar10", '{"root": "/nonexistent"}'), "CIFAR-10: no folder /nonexistent"),
    "image folder missing": (data("imagefolder", '{"root": "/nonexistent"}'), "image folder: no folder /nonexistent"),
    "unknown loader parameter": (data("digits", '{"resolutoin": 8}'), "bad parameters for dataset 'digits'"),
    "MNIST without root": (data("mnist"), "bad parameters for dataset 'mnist'"),
    "dataset params not JSON": (data("digits", "resolution=8"), "expected a JSON object"),
}


def run(argv) -> int:
    try:
        return main(argv)
    except SystemExit as exit_:
        return exit_.code


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_refused_in_one_line_and_leaves_nothing(files, tmp_path, capsys, case):
    argv, message = CASES[case]
    out_dir = tmp_path / "out"
    code = run(argv(files, str(out_dir / "result.csv")))
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("rsscale: error: "), err
    assert message in lines[0]
    assert "Traceback" not in err
    assert not out_dir.exists() or not any(out_dir.rglob("*")), sorted(out_dir.rglob("*"))
    assert not Path(files["marker"]).exists(), "a pickled object in a checkpoint was executed"


def test_the_table_has_enough_cases():
    assert len(CASES) >= 20


def test_a_checkpoint_cut_anywhere_is_refused_cleanly(files, tmp_path):
    """Whatever byte a copy or a killed writer stopped at, loading gives the one-line ValueError."""
    data = Path(files["m"]).read_bytes()
    cut = tmp_path / "cut.pt"
    for length in sorted({0, 1, 2, 10, 100, 1000, len(data) // 3, len(data) // 2, len(data) - 100, len(data) - 1}):
        cut.write_bytes(data[:length])
        with pytest.raises(ValueError, match="is not a readable checkpoint"):
            load_checkpoint(cut)


TINY = REPO / "workflow" / "config" / "quick.yaml"


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda c: c.update(sigmas=[0.0, 0.25]), "sigmas"),
        (lambda c: c["profile"].update(sigmas=[float("nan")]), "must be finite"),
        (lambda c: c["model"].update(arch="resnet9000"), "resnet9000"),
        (lambda c: c["cohen"].update(n0=500), "exceeds n"),
    ],
    ids=["sigma zero", "sigma NaN", "unknown architecture", "n0 > n"],
)
@pytest.mark.slow
def test_bad_workflow_config_is_refused_before_any_job(tmp_path, mutate, message):
    """Cases beyond those of test_workflow.py: the dry run must fail on the config alone."""
    config = yaml.safe_load(TINY.read_text())
    mutate(config)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory",
                             str(tmp_path), "--configfile", str(path), "--cores", "1", "--dry-run"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr
    assert not (tmp_path / "results").exists()
