import pytest

from hf_util import FAMILIES, load


@pytest.fixture(scope="session")
def parity_models(tmp_path_factory):
    """name -> (torch model, cfg, params), built lazily once per session."""
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = load(name, tmp_path_factory.mktemp(name))
        return cache[name]

    return get


@pytest.fixture(scope="session")
def qwen2(parity_models):
    return parity_models(FAMILIES[0])
