"""Test-wide settings: offline, a private cache per session, CPU threads kept small."""

import os

# Before anything imports huggingface_hub / wandb.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
# One intra-op thread per process: the tests' models are tiny (threads buy nothing) and the DDP and
# CLI tests start several processes at once; OpenMP threads oversubscribing 2 cores spin-wait and
# slow everything down by an order of magnitude. Set before torch is imported; inherited by children.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _session_cache(tmp_path_factory):
    """Every test session gets its own cache root so tests never read a developer's cache and
    first-use code paths (toy world generation) run as on a fresh machine."""
    if "LDM_VS_GAN_TEST_CACHE" in os.environ:  # reuse between local runs to save time
        os.environ["LDM_VS_GAN_CACHE"] = os.environ["LDM_VS_GAN_TEST_CACHE"]
    else:
        os.environ["LDM_VS_GAN_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield
