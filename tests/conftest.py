import os

import pytest
import torch
from hypothesis import HealthCheck, settings

# `ci`: derandomised so that a CI run is reproducible; `thorough`: long local runs.
settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=40,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=60, deadline=None)
settings.register_profile("thorough", max_examples=1000, deadline=None)
settings.load_profile(
    os.environ.get(
        "HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI", "").lower() == "true" else "dev"
    )
)


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a module of many tiny ops: on a busy CPU, threads only add
    synchronisation (log_sigmoid on 16 numbers took 20 ms with 2 threads under load, 2 µs with
    one). Use it with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def pytest_configure(config):
    # Also declared in pyproject.toml; repeated so that `pytest --pyargs` from elsewhere knows them.
    config.addinivalue_line("markers", "slow: long-running test (still run in CI)")
    config.addinivalue_line("markers", "gpu: needs a CUDA device (skipped without one)")


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
