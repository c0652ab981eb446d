"""Fixtures shared by the test modules."""

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """One PyTorch thread for a module's statistical trials (the rates do not depend on it; the run time does)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def quick_study_copy(tmp_path_factory):
    """A copy of the repository in which the README's quick check has run (for the slow tests that need a study)."""
    from documented_commands import QUICK_STUDY, copy_of_repository, shell

    copy = copy_of_repository(tmp_path_factory.mktemp("repository"))
    result = shell(QUICK_STUDY, copy, timeout=1800)  # a few minutes on 2 free cores; more on a loaded machine
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return copy
