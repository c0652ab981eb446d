"""Provenance sidecars: what produced a result file, on what, from which code."""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import torch

from rsscale.io import file_sha256, write_text_atomic

PACKAGES = ["rsscale", "torch", "torchvision", "numpy", "scipy", "scikit-learn", "matplotlib", "snakemake"]


def utc_now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def git_commit(path: str | Path = ".") -> str:
    """HEAD of the repository containing ``path`` (with ``-dirty`` when it has changes), or ``unknown``."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True, check=True)
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=path,
                                capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit.stdout.strip() + ("-dirty" if status.stdout.strip() else "")


def device_name(device: str | torch.device) -> str:
    """A human-readable name of the device: the GPU model, or the CPU model and thread count."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu} ({torch.get_num_threads()} threads)"


def package_versions() -> dict[str, str]:
    versions = {"python": sys.version.split()[0]}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def write_sidecar(path: str | Path, parameters: dict, started: str, device="cpu", **extra) -> dict:
    """Write the JSON provenance record of a run (atomically) and return it."""
    record = {
        "parameters": parameters,
        "started": started,
        "finished": utc_now(),
        "device": device_name(device),
        "threads": torch.get_num_threads(),
        "git_commit": git_commit(),
        "versions": package_versions(),
        "command": " ".join(sys.argv),
        "hostname": platform.node(),
        "environment": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS") if k in os.environ},
        **extra,
    }
    write_text_atomic(path, json.dumps(record, indent=2, sort_keys=True) + "\n")
    return record


MANIFEST_FORMAT = "rsscale-manifest-v1"


def _manifest_key(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` (POSIX separators), or absolute when it lies outside ``root``."""
    resolved = path.resolve()
    try:
        return resolved.relative_to(root.resolve()).as_posix()
    except ValueError:
        return resolved.as_posix()


def _artifact_files(paths, root: Path, exclude: set[Path]) -> list[Path]:
    """Every plain file under ``paths`` (files or folders, relative to ``root``), hidden files skipped."""
    files = []
    for entry in paths:
        path = Path(entry) if Path(entry).is_absolute() else root / entry
        if not path.exists():
            raise FileNotFoundError(f"manifest: no file or folder {entry!r} under {root}")
        found = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for file in found:
            parts = file.relative_to(path).parts if file != path else ()
            if any(part.startswith(".") for part in parts) or file.resolve() in exclude:
                continue  # temporary files of atomic writes (.<name>.*.tmp), the manifest itself
            files.append(file)
    return files


def build_manifest(root: str | Path, paths, configs=(), exclude=()) -> dict:
    """The provenance manifest of a study's outputs: the sha256 and size of every file under ``paths``.

    ``paths`` (files or folders, relative to ``root``) are the artifacts, e.g.
    ``results`` and ``figures``; ``configs`` are hashed under their own key.
    The record also holds the git commit of ``root`` and of the package
    source, the package versions, the device and the devices named by the
    result sidecars.  Keys are paths relative to ``root`` (absolute for files
    outside it), so :func:`verify_manifest` works from the same ``root``.
    """
    root = Path(root)
    exclude = {Path(p).resolve() for p in exclude}

    def entry(file: Path) -> dict:
        return {"sha256": file_sha256(file), "bytes": file.stat().st_size}

    files = {_manifest_key(f, root): entry(f) for f in _artifact_files(paths, root, exclude)}
    config_files = {_manifest_key(f, root): entry(f) for f in _artifact_files(configs, root, exclude)}
    sidecar_devices = set()
    for key in files:
        if key.endswith(".json"):
            path = Path(key) if Path(key).is_absolute() else root / key
            with contextlib.suppress(OSError, ValueError):
                record = json.loads(path.read_text())
                if isinstance(record, dict) and isinstance(record.get("device"), str):
                    sidecar_devices.add(record["device"])
    return {
        "format": MANIFEST_FORMAT,
        "created": utc_now(),
        "root": str(root.resolve()),
        "git_commit": git_commit(root),
        "package_git_commit": git_commit(Path(__file__).resolve().parent),
        "versions": package_versions(),
        "device": device_name("cuda" if torch.cuda.is_available() else "cpu"),
        "hostname": platform.node(),
        "sidecar_devices": sorted(sidecar_devices),
        "configs": config_files,
        "files": files,
    }


def verify_manifest(manifest: str | Path, root: str | Path = ".") -> tuple[int, list[str]]:
    """Recompute the checksums a manifest records; return (files checked, one line per problem).

    A problem is a file that is missing or whose sha256 differs from the
    recorded one.  A file that is not a manifest raises a ValueError.
    """
    manifest, root = Path(manifest), Path(root)
    try:
        record = json.loads(manifest.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{manifest} is not a JSON manifest ({err})") from err
    if not isinstance(record, dict) or record.get("format") != MANIFEST_FORMAT:
        raise ValueError(f"{manifest} is not an rsscale manifest (expected format {MANIFEST_FORMAT!r})")
    entries = {**record.get("configs", {}), **record.get("files", {})}
    problems = []
    for key, expected in sorted(entries.items()):
        path = Path(key) if Path(key).is_absolute() else root / key
        if not path.is_file():
            problems.append(f"MISSING {key}")
            continue
        actual = file_sha256(path)
        if actual != expected["sha256"]:
            problems.append(f"CHANGED {key}: sha256 {actual[:12]}... now, {expected['sha256'][:12]}... recorded")
    return len(entries), problems
