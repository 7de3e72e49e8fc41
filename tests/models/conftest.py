from hf_fixtures import hf_models  # noqa: F401  (session fixture: tiny random HF models)
