"""Shared fixtures: small crystals shipped in the repo; ../shared/data only where present."""

from __future__ import annotations

from pathlib import Path

import pytest

from xtalagent import config

FIXTURES = Path(__file__).parent / "fixtures"

#: Fixtures that alone take tens of CPU seconds: every test using one is ``slow`` (-m "not slow" skips it).
#: tiny_model trains a base LM, both adapters, the prior and the classifier; hub_model fine-tunes on
#: a hub-style base; local_ray starts a Ray cluster.
SLOW_FIXTURES = frozenset({"tiny_model", "hub_model", "local_ray"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())) or item.get_closest_marker("vllm"):
            item.add_marker(pytest.mark.slow)  # a real vLLM server (when one is installed) is slow too


@pytest.fixture(scope="session")
def fixtures() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (config.SHARED_DATA_DIR / "README.md").exists():
        pytest.skip(f"shared data not available at {config.SHARED_DATA_DIR}")
    return config.SHARED_DATA_DIR


@pytest.fixture(scope="session")
def fixture_dataset(tmp_path_factory) -> Path:
    """The shipped fixture CSV labelled once per test session."""
    from xtalagent.data import build_dataset

    out = tmp_path_factory.mktemp("data") / "crystals.parquet"
    build_dataset([FIXTURES / "crystals.csv"], out, workers=1, progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny base LM, both adapters, the prior and the classifier trained on the shipped fixture:
    seconds, not minutes."""
    from xtalagent.finetune.settings import FinetuneSettings
    from xtalagent.finetune.train import BaseModelConfig
    from xtalagent.finetune.workflow import run_finetune

    out = tmp_path_factory.mktemp("model")
    run_finetune(
        FIXTURES / "crystals.csv",
        out,
        settings=FinetuneSettings(epochs=1, base_epochs=1, batch_size=8, limit=16, threads=2, classifier_epochs=5),
        base_config=BaseModelConfig(hidden_size=64, num_layers=1, num_heads=1, intermediate_size=64),
    )
    return out
