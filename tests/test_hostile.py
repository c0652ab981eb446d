"""Hostile input: every bad argument, file or config is refused with one clear line and leaves nothing behind.

Each CLI case runs ``rsscale.cli.main`` in-process and checks five things: the
exit status is 2, stderr is exactly one line ``rsscale: error: ...`` holding a
distinctive piece of the message, no traceback is printed, nothing exists
under the folder of the ``--out`` path afterwards, and every file that existed
before (the inputs) is byte for byte what it was.  The accepted cases (input a
careless user gives that is still usable) must give the correct result.  The
config cases check that a study config is refused before any job runs.
"""

import hashlib
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from rsscale import cli
from rsscale.cli import main
from rsscale.experiments import inference_cost
from rsscale.experiments.plan import Plan, check_config
from rsscale.io import read_run
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


class ShellPayload:
    """The classic attack: unpickling calls ``os.system`` with a shell command (here: create a marker file)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def snapshot(root) -> dict:
    """sha256 of every file under ``root``: what a refused command must leave unchanged."""
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(Path(root).rglob("*")) if p.is_file()}


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

    def dataset(name, **changes):  # a variant of the digits dataset file, written as a careless user would
        f[name] = root / f"{name}.pt"
        torch.save(dict(payload, **changes), f[name])

    dataset("f16", x_train=payload["x_train"].half(), x_test=payload["x_test"].half())
    dataset("f64", x_train=payload["x_train"].double(), x_test=payload["x_test"].double())
    dataset("x255", x_train=payload["x_train"] * 255, x_test=payload["x_test"] * 255)
    dataset("negative", x_test=payload["x_test"] - 0.5)
    dataset("empty_train", x_train=payload["x_train"][:0], y_train=payload["y_train"][:0])
    dataset("empty_test", x_test=payload["x_test"][:0], y_test=payload["y_test"][:0])
    dataset("float_labels", y_test=payload["y_test"].float())
    dataset("short_labels", y_test=payload["y_test"][:-1])
    dataset("constant", x_train=torch.full_like(payload["x_train"], 0.5))
    dataset("three_classes", y_train=payload["y_train"] % 3, y_test=payload["y_test"] % 3, num_classes=3)
    shutil.copyfile(f["m"], root / "nosha.pt")  # a checkpoint copied without its .sha256 file
    f["nosha"] = root / "nosha.pt"
    f["shell_marker"] = root / "shell-ran"
    f["shell"] = root / "shell.pt"
    torch.save({"format": "rsscale-checkpoint-v1", "meta": ShellPayload(f["shell_marker"])}, f["shell"])
    f["cert"] = root / "cert.csv"
    assert main(["certify", "--data", str(f["d8"]), "--checkpoint", str(f["m"]), "--params", SMALL, "--max-inputs",
                 "3", "--out", str(f["cert"]), "--quiet", "--device", "cpu"]) == 0
    f["adir"] = root / "a-folder"
    f["adir"].mkdir()
    f["text"] = root / "notes.txt"
    f["text"].write_text("n0 = 10\n")
    return {k: str(v) for k, v in f.items()}


def certify(data="d8", checkpoint="m", params=SMALL, *extra):
    return lambda f, out: ["certify", "--data", f.get(data, data), "--checkpoint", f.get(checkpoint, checkpoint),
                           "--params", params, "--out", out, "--quiet", "--device", "cpu", *extra]


def train(*extra, data="d8"):
    return lambda f, out: ["train", "--data", f[data], "--sigma", "0.25", "--epochs", "1", "--out", out, "--quiet",
                           "--device", "cpu", *extra]


def data(dataset, params="{}"):
    return lambda f, out: ["data", "--dataset", dataset, "--params", params, "--out", out]


def command(*words):
    """Any command; a word naming a fixture file is replaced by its path, ``OUT`` by the --out path."""
    return lambda f, out: [out if w == "OUT" else f.get(w, w) for w in words]


CUDA = torch.cuda.is_available()
NO_GPU = "PyTorch sees no CUDA GPU"


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
    # datasets a careless user writes
    "pixels x255": (certify("x255"), "x_train holds values from 0 to 255; inputs must lie in [0, 1] (pixels in 0..255"),
    "negative pixels": (certify("negative"), "x_test holds values from -0.5 to 0.5; inputs must lie in [0, 1]"),
    "empty training set": (train(data="empty_train"), "the train split is empty"),
    "empty test set": (certify("empty_test"), "the test split is empty"),
    "float labels": (certify("float_labels"), "y_test must be an integer tensor"),
    "fewer labels than inputs": (certify("short_labels"), "y_test must be an integer tensor of 360 labels"),
    "constant training inputs (std 0)": (train(data="constant"), "training inputs have standard deviation 0.0"),
    "model classes != data classes": (certify("three_classes"), "scores 10 classes, but the dataset"),
    "certificate CSV given as data": (certify("cert"), "is not a readable dataset file"),
    "folder given as data": (certify("adir"), "no dataset file at"),
    "folder given as --out": (command("data", "--dataset", "digits", "--out", "adir"), "Is a directory"),
    # sampling parameters
    "sigma 1e39": (certify("d8", "m", SMALL, "--sigma", "1e39"), "sigma = 1e+39 is too large"),
    "training sigma 1e39": (train("--sigma", "1e39"), "sigma = 1e+39 is too large"),
    "negative n": (certify("d8", "m", '{"n0": 10, "n": -5}'), "n must be an integer >= 1, got -5"),
    "n0 a word": (certify("d8", "m", '{"n0": "ten", "n": 50}'), "n0 must be an integer >= 1, got 'ten'"),
    "alpha = 1": (certify("d8", "m", '{"n0": 10, "n": 50, "alpha": 1}'), "alpha must lie strictly between 0 and 1"),
    "incremental n0 > n": (command("incremental", "--data", "d8", "--checkpoint", "m", "--n0", "100", "--n", "50",
                                   "--out", "OUT"), "n0 (selection samples, 100) must not exceed n"),
    "incremental alpha 0": (command("incremental", "--data", "d8", "--checkpoint", "m", "--alpha", "0", "--out",
                                    "OUT"), "alpha must lie strictly between 0 and 1"),
    "params file not JSON": (certify("d8", "m", SMALL, "--params-file", "d8"), "cannot read method parameters from"),
    "missing params file": (certify("d8", "m", SMALL, "--params-file", "missing"), "cannot read method parameters"),
    # devices, threads, seeds, sizes
    "--device banana": (certify("d8", "m", SMALL, "--device", "banana"), "unknown device 'banana'"),
    "--device cuda:7": (certify("d8", "m", SMALL, "--device", "cuda:7"),
                        "device 'cuda:7' does not exist" if CUDA else NO_GPU),
    "--threads -2": (train("--threads", "-2"), "--threads must be >= 1, got -2"),
    "--threads 0": (certify("d8", "m", SMALL, "--threads", "0"), "--threads must be >= 1, got 0"),
    "--seed -1": (certify("d8", "m", SMALL, "--seed", "-1"), "--seed must be >= 0, got -1"),
    "--threads a word": (certify("d8", "m", SMALL, "--threads", "all"), "argument --threads: invalid int value"),
    "misspelled option": (certify("d8", "m", SMALL, "--maxinputs", "3"), "unrecognized arguments: --maxinputs 3"),
    "unknown command": (command("certfy", "--out", "OUT"), "invalid choice: 'certfy'"),
    "--batch-sizes 0": (command("profile", "--data", "d8", "--checkpoint", "m", "--batch-sizes", "0", "--out", "OUT"),
                        "--batch-sizes must all be >= 1, got 0"),
    "cnn hidden 0": (train("--arch-params", '{"width": 4, "hidden": 0}'), "hidden must be an integer >= 1, got 0"),
    "cnn width 0": (train("--arch-params", '{"width": 0}'), "width must be an integer >= 1, got 0"),
    "width a string": (train("--arch-params", '{"width": "4"}'), "width must be an integer >= 1, got '4'"),
    "mlp hidden 0": (train("--arch", "mlp", "--arch-params", '{"hidden": [0]}'), "hidden[0] must be an integer >= 1"),
    "denoiser width 0": (command("train-denoiser", "--data", "d8", "--classifier", "m", "--sigma", "0.25", "--width",
                                 "0", "--epochs", "1", "--quiet", "--out", "OUT"), "DnCNN width must be an integer"),
    "divergent training": (train("--lr", "1e30"), "training diverged: the loss is nan at epoch 1 of 1"),
    "two checkpoints for cohen": (command("certify", "--data", "d8", "--checkpoint", "m", "m", "--params", SMALL,
                                          "--out", "OUT", "--quiet", "--device", "cpu"),
                                  "method 'cohen' certifies one model, got 2"),
    # checkpoints
    "no sha256 file": (certify("d8", "nosha"), "has no sha256 file nosha.pt.sha256 beside it"),
    "no sha256 file (profile)": (command("profile", "--data", "d8", "--checkpoint", "nosha", "--out", "OUT"),
                                 "pass --trust-checkpoint"),
    "no sha256 file (denoiser's classifier)": (
        command("train-denoiser", "--data", "d8", "--classifier", "nosha", "--sigma", "0.25", "--quiet", "--out",
                "OUT"), "has no sha256 file"),
    "os.system payload": (certify("d8", "shell"), "it tried to load the global posix.system"),
    "os.system payload, trusted": (certify("d8", "shell", SMALL, "--trust-checkpoint"), "posix.system"),
    # tables and ledgers
    "certificate CSV as a profile": (command("table", "profile", "--inputs", "cert", "--out", "OUT"),
                                     "the table's inputs lack the column(s) batch_size"),
    "dataset as a table's input": (command("table", "certified-accuracy", "--inputs", "d8", "--out", "OUT"),
                                   "the inputs are not result files of the 'certified-accuracy' table"),
    "dataset as the claims ledger": (command("claims", "--ledger", "d8", "--out", "OUT"),
                                     "is not a YAML claims ledger"),
    "text as the claims ledger": (command("claims", "--ledger", "text", "--out", "OUT"),
                                  "expected a mapping with a list under 'claims'"),
}
if not CUDA:
    CASES["--device cuda without a GPU"] = (certify("d8", "m", SMALL, "--device", "cuda"), NO_GPU)


def run(argv) -> int:
    try:
        return main(argv)
    except SystemExit as exit_:
        return exit_.code


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_refused_in_one_line_and_leaves_nothing(files, tmp_path, capsys, case):
    argv, message = CASES[case]
    out_dir = tmp_path / "out"
    before = snapshot(Path(files["d8"]).parent)
    code = run(argv(files, str(out_dir / "result.csv")))
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("rsscale: error: "), err
    assert message in lines[0]
    assert "Traceback" not in err
    assert not out_dir.exists() or not any(out_dir.rglob("*")), sorted(out_dir.rglob("*"))
    assert not Path(files["marker"]).exists(), "a pickled object in a checkpoint was executed"
    assert not Path(files["shell_marker"]).exists(), "an os.system payload in a checkpoint was executed"
    assert snapshot(Path(files["d8"]).parent) == before, "a refused command changed a file that existed before"


def certified(path) -> list:
    """The certificates of a run without its wall-clock column."""
    run = read_run(path)
    return [run.columns[c].tolist() for c in ("idx", "label", "prediction", "radius", "p_lower", "forward_passes")]


#: Input a careless user gives that is still usable: (argv, expected stderr fragment); the run must certify the same
#: inputs exactly as the clean dataset and the verified checkpoint do (``cert``).
ACCEPTED = {
    "float16 dataset (converted)": (certify("f16", "m", SMALL, "--max-inputs", "3"),
                                    "x_test converted from torch.float16 to float32"),
    "float64 dataset (converted)": (certify("f64", "m", SMALL, "--max-inputs", "3"),
                                    "x_train converted from torch.float64 to float32"),
    "checkpoint without sha256, trusted": (certify("d8", "nosha", SMALL, "--max-inputs", "3", "--trust-checkpoint"),
                                           ""),
}


@pytest.mark.parametrize("case", list(ACCEPTED))
def test_usable_input_gives_the_correct_result(files, tmp_path, capsys, caplog, case):
    argv, note = ACCEPTED[case]
    before = snapshot(Path(files["d8"]).parent)
    out = tmp_path / "result.csv"
    assert run(argv(files, str(out))) == 0
    assert "Traceback" not in capsys.readouterr().err
    assert note in caplog.text  # the conversion is said (on the rsscale logger: stderr outside pytest)
    assert certified(out) == certified(files["cert"])
    assert snapshot(Path(files["d8"]).parent) == before


@pytest.mark.parametrize("error, command, hint", [
    (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
     ["certify", "--params", '{"n0": 10, "n": 50, "batch_size": 100}'],
     """at batch size 100: try --params '{"n0": 10, "n": 50, "batch_size": 50}'"""),
    (RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: you tried "
                  "to allocate 4000000000000 bytes. Error code 12 (Cannot allocate memory)"),
     ["certify", "--params", '{"n0": 10, "n": 50}'], """at batch size 1000: try --params '{"n0": 10, "n": 50, """),
    (MemoryError(), ["train", "--sigma", "0.25", "--batch-size", "64"], "at batch size 64: try --batch-size 32"),
    (torch.OutOfMemoryError("CUDA out of memory"), ["profile", "--batch-sizes", "100", "1000"],
     "try --batch-sizes 50 500"),
], ids=["CUDA certify", "CPU allocator certify (default batch size)", "Python MemoryError train", "CUDA profile"])
def test_out_of_memory_names_the_batch_size_to_try(files, tmp_path, capsys, monkeypatch, error, command, hint):
    """An allocation failure anywhere in a command becomes one line with half the batch size and its flag."""
    def exhausted(*args, **kwargs):
        raise error

    for name in ("certify_checkpoints", "train_classifier", "profile_checkpoint"):
        monkeypatch.setattr(cli, name, exhausted)
    out = tmp_path / "out" / "result.csv"
    code = run([*command, "--data", files["d8"], "--checkpoint", files["m"], "--out", str(out), "--device", "cpu"]
               if command[0] != "train" else [*command, "--data", files["d8"], "--out", str(out), "--device", "cpu"])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("rsscale: error: out of memory ") and hint in lines[0], lines[0]
    assert not out.parent.exists()


def test_other_runtime_errors_are_not_mistaken_for_memory(files, tmp_path, monkeypatch):
    """Only allocation failures are turned into the batch-size message; a bug keeps its traceback."""
    def broken(*args, **kwargs):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    monkeypatch.setattr(cli, "certify_checkpoints", broken)
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        main(["certify", "--data", files["d8"], "--checkpoint", files["m"], "--out", str(tmp_path / "r.csv")])


def test_the_table_has_enough_cases():
    assert len(CASES) >= 90


def test_a_checkpoint_cut_anywhere_is_refused_cleanly(files, tmp_path):
    """Whatever byte a copy or a killed writer stopped at, loading gives the one-line ValueError."""
    data = Path(files["m"]).read_bytes()
    cut = tmp_path / "cut.pt"
    for length in sorted({0, 1, 2, 10, 100, 1000, len(data) // 3, len(data) // 2, len(data) - 100, len(data) - 1}):
        cut.write_bytes(data[:length])
        with pytest.raises(ValueError, match="is not a readable checkpoint"):
            load_checkpoint(cut)


TINY = REPO / "workflow" / "config" / "quick.yaml"

#: Config mistakes that need several sections to see: (mutation, message naming the key).
CONFIG_CASES = {
    "sample_count.ns below cohen.n0": (lambda c: c["sample_count"].update(ns=[5, 100]),
                                       "sample_count.ns[0] = 5 is below cohen.n0 = 10"),
    "training_methods.n below cohen.n0": (lambda c: c["training_methods"].update(n=3),
                                          "training_methods.n = 3 is below cohen.n0 = 10"),
    "unknown method in extra_information.runs": (
        lambda c: c["extra_information"]["runs"].update(magic={"method": "magic"}),
        "extra_information.runs.magic.method: unknown method 'magic'"),
    "unknown method in violations.methods": (lambda c: c["violations"]["methods"].update({"nope+x": {}}),
                                             "violations.methods.nope+x: unknown method 'nope'"),
    "duplicate sigmas": (lambda c: c.update(sigmas=[0.25, 0.5, 0.25]), "config.sigmas lists 0.25 more than once"),
    "duplicate training_methods.sigmas": (lambda c: c["training_methods"].update(sigmas=[0.5, 0.5]),
                                          "config.training_methods.sigmas lists 0.5 more than once"),
    "duplicate aces.sigmas": (lambda c: c["aces"].update(sigmas=[0.25, 0.25]), "config.aces.sigmas lists 0.25"),
    "duplicate profile.sigmas": (lambda c: c["profile"].update(sigmas=[0.25, 0.25]), "config.profile.sigmas lists"),
    "n0 > n in a section": (lambda c: c["dimension"].update(n0=500), "config.dimension: n0 = 500 exceeds n = 100"),
    "infinite number": (lambda c: c["cohen"].update(alpha=float("inf")), "config.cohen.alpha = inf"),
}


@pytest.mark.parametrize("case", list(CONFIG_CASES))
def test_config_mistakes_across_sections_are_refused_naming_the_key(case):
    mutate, message = CONFIG_CASES[case]
    config = yaml.safe_load(TINY.read_text())
    check_config(config)  # the quick study itself passes
    mutate(config)
    with pytest.raises(ValueError) as refused:
        check_config(config)
    assert message in str(refused.value) and "\n" not in str(refused.value)


def test_the_plan_refuses_a_run_whose_n0_exceeds_the_n_of_another_section():
    """inference_cost.iss.n0 meets the largest sample_count.ns only when the run is planned: refused there."""
    config = yaml.safe_load(TINY.read_text())
    config["inference_cost"]["iss"]["n0"] = 500
    with pytest.raises(ValueError, match=r"results/certify/digits8/iss/.*: n0 = 500 exceeds n = 100"):
        inference_cost.runs(Plan(config))


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda c: c.update(sigmas=[0.0, 0.25]), "sigmas"),
        (lambda c: c["profile"].update(sigmas=[float("nan")]), "must be finite"),
        (lambda c: c["model"].update(arch="resnet9000"), "resnet9000"),
        (lambda c: c["cohen"].update(n0=500), "exceeds n"),
        CONFIG_CASES["sample_count.ns below cohen.n0"],
        CONFIG_CASES["unknown method in extra_information.runs"],
        CONFIG_CASES["duplicate sigmas"],
    ],
    ids=["sigma zero", "sigma NaN", "unknown architecture", "n0 > n", "ns below n0", "unknown method", "sigma twice"],
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
