"""Every registered method family certifies on CUDA: its harness cases run on the GPU (skipped without one).

The machinery is workflow/scripts/gpu_families.py's (certifiers built on the device from copies of the harness's
oracles); on a GPU machine: ``python -m pytest -q -m slow tests/test_gpu_families.py``.
"""

import importlib.util
from pathlib import Path

import pytest
import torch

from rsscale import harness, methods

SCRIPT = Path(__file__).resolve().parents[1] / "workflow" / "scripts" / "gpu_families.py"
_spec = importlib.util.spec_from_file_location("gpu_families", SCRIPT)
gpu_families = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gpu_families)

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")]


@pytest.mark.parametrize("method", methods.available())
def test_family_certifies_on_cuda(method):
    assert harness.declared_cases(method), f"{method} declares no harness case to run on the GPU"
    rows = gpu_families.run("cuda", trials=50, alpha=0.05, seed=0, names=[method])
    assert rows and {r["method"] for r in rows} == {method}
    failed = [(r["case"], r["verdict"], r["error"]) for r in rows if r["verdict"] in ("ERROR", "FAIL")]
    assert not failed
