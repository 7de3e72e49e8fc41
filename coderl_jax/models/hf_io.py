"""Hugging Face directories <-> parameter pytrees, without torch.

Import (`load_hf`): config.json plus `model.safetensors`, or shards `*.safetensors` listed by
`model.safetensors.index.json`. Everything is checked before any parameter is allocated: every
tensor the config implies is present, nothing unexpected is there, every shape equals the config's.
Parameters are then created directly with their final sharding by `jax.make_array_from_callback`:
each host reads, from memory-mapped files, only the slices its own devices hold (one read per
distinct slice), converts the dtype on the fly and never builds a full copy per device.

Export (`save_hf`): config.json, safetensors shards (+ index when more than one),
generation_config.json and the tokenizer files of a source directory, written to a temporary
directory next to the target and renamed into place, so a directory is complete or absent.
Sharded arrays are brought to the host one tensor at a time (gathered across processes when they
are not all addressable); process 0 writes.

HF stores a linear layer's weight as [out, in]; our params store [in, out]: the callback reads the
transposed slice from the file and transposes it back.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import uuid
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

from coderl_jax.errors import UserError
from coderl_jax.models.config import DTYPES, ConfigError, ModelConfig
from coderl_jax.models.sharding import param_shardings, path_names
from coderl_jax.models.transformer import param_shapes
from coderl_jax.parallel.rules import Rules

log = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
GENERATION_CONFIG_FILE = "generation_config.json"
TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt",
    "tokenizer.model", "added_tokens.json", "chat_template.jinja", "chat_template.json",
)
# any one of these makes a directory a tokenizer's (find_tokenizer_dir)
TOKENIZER_MARKERS = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")
DEFAULT_SHARD_BYTES = 4 * 2**30
FLOAT_DTYPES = {"F64", "F32", "F16", "BF16"}
HARMLESS = re.compile(r"(^|\.)rotary_emb\.inv_freq$")  # buffers older exporters wrote


class CheckpointError(UserError, ValueError):
    """A checkpoint that does not match its config or cannot be read; names file and tensor."""


# ------------------------------------------------------------------------------------------------
# Names


def hf_name(names: list[str]) -> tuple[str, bool]:
    """(HF tensor name, stored transposed?) of the parameter at params path `names`."""
    if names == ["embed_tokens"]:
        return "model.embed_tokens.weight", False
    if names == ["lm_head"]:
        return "lm_head.weight", True
    if names == ["norm", "weight"]:
        return "model.norm.weight", False
    _, layer, *rest = names
    prefix = f"model.layers.{layer}."
    if rest[-1] in ("q_bias", "k_bias", "v_bias"):
        return f"{prefix}self_attn.{rest[-1][0]}_proj.bias", False
    if rest[-1] == "weight":  # RMSNorm weights, including self_attn.q_norm / k_norm
        return prefix + ".".join(rest), False
    return prefix + ".".join(rest) + ".weight", True  # linear layers: HF [out, in]


def expected_tensors(cfg: ModelConfig) -> dict[str, tuple[tuple, bool]]:
    """HF name -> (HF shape, transposed) for every tensor the config implies."""
    out = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(param_shapes(cfg))[0]:
        name, transposed = hf_name(path_names(path))
        out[name] = (tuple(reversed(leaf.shape)) if transposed else tuple(leaf.shape), transposed)
    return out


def _dtype_name(dtype) -> str:
    name = jnp.dtype(dtype).name
    if name not in DTYPES:
        raise ConfigError(f"dtype {name!r} unsupported: expected one of {sorted(DTYPES)}")
    return name


def read_config(config_file: Path, *, param_dtype=None, dtype=None) -> ModelConfig:
    """ModelConfig from an HF-form JSON file, with the parameter / compute dtypes overridden if given."""
    overrides = {k: _dtype_name(v) for k, v in (("param_dtype", param_dtype), ("dtype", dtype)) if v is not None}
    return ModelConfig.from_file(config_file, **overrides)


# ------------------------------------------------------------------------------------------------
# Import


class _Reader:
    """Open safetensors files of one HF directory; locates, validates and slices tensors."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.handles: dict[Path, object] = {}
        self.where: dict[str, Path] = {}  # tensor name -> file
        self.info: dict[str, tuple[tuple, str]] = {}  # tensor name -> (shape, dtype)
        self.listing = directory / SINGLE_FILE  # the file named in "missing tensor" errors
        self.index_map: dict[str, str] | None = None  # tensor name -> file name, from the index

    def open(self) -> "_Reader":
        index = self.directory / INDEX_FILE
        if index.exists():
            self.listing = index
            files = self._index_files(index)
        elif (self.directory / SINGLE_FILE).exists():
            files = [self.directory / SINGLE_FILE]
        else:
            files = sorted(self.directory.glob("*.safetensors"))
            if not files:
                raise CheckpointError(f"{self.directory}: no {SINGLE_FILE}, {INDEX_FILE} or *.safetensors")
            self.listing = self.directory
        for file in files:
            try:
                handle = safe_open(str(file), framework="numpy")
                self.handles[file] = handle
                info = {name: (tuple(handle.get_slice(name).get_shape()), handle.get_slice(name).get_dtype())
                        for name in handle.keys()}
            except Exception as e:  # SafetensorError, OSError: bad header, truncated file, ...
                raise CheckpointError(f"{file}: not a readable safetensors file ({e})") from None
            for name in info:
                if self.index_map is not None and self.index_map.get(name) != file.name:
                    continue  # the index decides where a tensor lives
                if name in self.where:
                    raise CheckpointError(f"{file}: tensor {name!r} also in {self.where[name]}")
                self.where[name], self.info[name] = file, info[name]
        if self.index_map is not None:
            for name, file_name in self.index_map.items():
                if name not in self.where:
                    raise CheckpointError(f"{self.directory / file_name}: tensor {name!r}, listed in "
                                          f"{INDEX_FILE}, is not in the file")
        return self

    def _index_files(self, index: Path) -> list[Path]:
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
            if not isinstance(weight_map, dict):
                raise TypeError("weight_map is not an object")
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as e:
            raise CheckpointError(f"{index}: not a valid safetensors index (field 'weight_map': {e})") from None
        self.index_map = weight_map
        files = []
        for file_name in dict.fromkeys(weight_map.values()):
            if not (self.directory / file_name).exists():
                raise CheckpointError(f"{index}: lists {file_name!r}, which does not exist")
            files.append(self.directory / file_name)
        return files

    def close(self):
        self.handles.clear()  # safe_open handles unmap when collected

    def __enter__(self):
        return self.open()

    def __exit__(self, *exc):
        self.close()

    def check(self, cfg: ModelConfig, config_file: Path) -> dict[str, tuple[tuple, bool]]:
        """Validate names, shapes and dtypes against the config; returns `expected_tensors(cfg)`."""
        expected = expected_tensors(cfg)
        missing = [n for n in expected if n not in self.where]
        if missing:
            hint = (f" ({config_file} has tie_word_embeddings=false)" if missing == ["lm_head.weight"] else "")
            raise CheckpointError(f"{self.listing}: missing tensor {missing[0]!r}{hint}"
                                  + (f" and {len(missing) - 1} more" if len(missing) > 1 else ""))
        for name, file in self.where.items():
            if name in expected or HARMLESS.search(name):
                continue
            if name == "lm_head.weight" and cfg.tie_word_embeddings:
                self._check_tied_head(file, config_file)
                continue
            raise CheckpointError(f"{file}: unexpected tensor {name!r} (not part of a {cfg.family} model "
                                  f"described by {config_file})")
        for name, (shape, _) in expected.items():
            got, dtype = self.info[name]
            if got != shape:
                raise CheckpointError(f"{self.where[name]}: tensor {name!r} has shape {list(got)}, "
                                      f"{config_file} implies {list(shape)}")
            if dtype not in FLOAT_DTYPES:
                raise CheckpointError(f"{self.where[name]}: tensor {name!r} has dtype {dtype}, expected "
                                      f"one of {sorted(FLOAT_DTYPES)}")
        return expected

    def _check_tied_head(self, file: Path, config_file: Path):
        """A tied model may carry lm_head.weight only as a copy of the embeddings (rows sampled)."""
        embed = "model.embed_tokens.weight"
        if self.info["lm_head.weight"][0] == self.info[embed][0]:
            v = self.info[embed][0][0]
            rows = sorted({0, v // 2, v - 1})
            if all(np.array_equal(self.read("lm_head.weight", (slice(r, r + 1), slice(None))),
                                  self.read(embed, (slice(r, r + 1), slice(None)))) for r in rows):
                return
        raise CheckpointError(f"{file}: tensor 'lm_head.weight' differs from {embed!r}, but {config_file} "
                              "has tie_word_embeddings=true")

    def read(self, name: str, index: tuple) -> np.ndarray:
        """The slice `index` (in the file's layout) of tensor `name`, read from the mapped file."""
        return self.handles[self.where[name]].get_slice(name)[index]


def _read_slice(reader: _Reader, name: str, index: tuple, transposed: bool) -> np.ndarray:
    """One device's slice, `index` in our layout. (Tests wrap this to count what is read.)"""
    if transposed:
        return reader.read(name, tuple(reversed(index))).T
    return reader.read(name, index)


def load_hf(path: str | Path, *, mesh: jax.sharding.Mesh | None = None, rules: Rules | None = None,
            param_dtype=None, dtype=None) -> tuple[ModelConfig, dict]:
    """Load an HF directory as (config, params), placed on `mesh` with `rules` (default TRAIN_RULES).

    Without a mesh the params go to the first device. `param_dtype` (storage) and `dtype`
    (compute) override config.json's; the default is float32 for both. Raises ConfigError for a bad
    config.json and CheckpointError for missing, unexpected, misshapen or unreadable tensors,
    before anything is allocated.
    """
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"{path}: not a directory")
    config_file = path / CONFIG_FILE
    cfg = read_config(config_file, param_dtype=param_dtype, dtype=dtype)
    shardings = param_shardings(cfg, mesh, rules)
    target = jnp.dtype(cfg.param_dtype)

    with _Reader(path) as reader:
        expected = reader.check(cfg, config_file)

        def make(path_, leaf, sharding):
            name = hf_name(path_names(path_))[0]
            transposed = expected[name][1]
            cache: dict = {}  # several devices holding the same slice read it once

            def callback(index):
                key = tuple((s.start, s.stop, s.step) for s in index)
                if key not in cache:
                    try:
                        cache[key] = np.asarray(_read_slice(reader, name, index, transposed), target)
                    except Exception as e:
                        raise CheckpointError(f"{reader.where[name]}: reading tensor {name!r} failed: {e}") from e
                return cache[key]

            return jax.make_array_from_callback(leaf.shape, sharding, callback, dtype=target)

        params = jax.tree_util.tree_map_with_path(make, param_shapes(cfg), shardings)
    log.info("loaded %s (%s, %.1fM params) from %s", cfg.family, cfg.param_dtype, cfg.num_params() / 1e6, path)
    return cfg, params


# ------------------------------------------------------------------------------------------------
# Export


def _to_host(x) -> np.ndarray:
    """The full value of a (possibly sharded, possibly multi-host) array on this host."""
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(x)


def check_params(cfg: ModelConfig, params, source: str = "params") -> None:
    """Raise CheckpointError unless `params` (arrays, or anything with .shape) has exactly the
    structure and shapes `cfg` implies; `source` names where they come from."""
    def shapes(tree):
        leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
        return {"/".join(path_names(p)): tuple(getattr(leaf, "shape", np.shape(leaf))) for p, leaf in leaves}

    want, have = shapes(param_shapes(cfg)), shapes(params)
    for key in sorted(want.keys() - have.keys()):
        raise CheckpointError(f"{source}: missing parameter {key}")
    for key in sorted(have.keys() - want.keys()):
        raise CheckpointError(f"{source}: unexpected parameter {key}")
    for key, shape in want.items():
        if have[key] != shape:
            raise CheckpointError(f"{source}: {key} has shape {list(have[key])}, the config implies {list(shape)}")


def _plan_shards(entries, itemsize: int, max_shard_bytes: int) -> list[list]:
    """Group (name, leaf, transposed) entries into consecutive shards of bounded size."""
    shards, current, size = [], [], 0
    for entry in entries:
        nbytes = math.prod(np.shape(entry[1])) * itemsize
        if current and size + nbytes > max_shard_bytes:
            shards.append(current)
            current, size = [], 0
        current.append(entry)
        size += nbytes
    return shards + [current] if current else shards


def _generation_config(cfg: ModelConfig) -> dict:
    eos = list(cfg.eos_token_ids)
    return {
        "bos_token_id": cfg.bos_token_id,
        "eos_token_id": eos[0] if len(eos) == 1 else (eos or None),
        "pad_token_id": cfg.pad_token_id,
    }


def save_hf(cfg: ModelConfig, params: dict, out_dir: str | Path, *, tokenizer_dir: str | Path | None = None,
            max_shard_bytes: int = DEFAULT_SHARD_BYTES, dtype=None, overwrite: bool = False,
            local: bool = False) -> Path:
    """Write `params` as an HF directory that transformers' AutoModelForCausalLM (and vLLM) loads.

    `dtype` is the stored dtype (default: cfg.param_dtype). Tokenizer files and
    generation_config.json are copied from `tokenizer_dir` when given (generation_config.json is
    otherwise written from the config's bos/eos/pad ids). An existing non-empty `out_dir` is an
    error unless `overwrite`. Every process must call this (gathers are collective); process 0
    writes. With `local=True` (params held by this process alone, a directory on this host's disk)
    the calling process writes and nothing is collective. Returns `out_dir`.
    """
    out_dir = Path(out_dir)
    check_params(cfg, params)
    out_cfg = cfg.replace(param_dtype=_dtype_name(dtype or cfg.param_dtype))
    np_dtype = jnp.dtype(out_cfg.param_dtype)
    writer = local or jax.process_index() == 0
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())) and not overwrite:
        raise FileExistsError(f"{out_dir}: exists and is not empty (pass overwrite=True to replace it)")
    tokenizer_dir = Path(tokenizer_dir) if tokenizer_dir is not None else None

    entries = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        name, transposed = hf_name(path_names(path))
        entries.append((name, leaf, transposed))
    shards = _plan_shards(entries, np_dtype.itemsize, max_shard_bytes)
    file_names = ([SINGLE_FILE] if len(shards) == 1 else
                  [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))])

    tmp = out_dir.parent / f".{out_dir.name}.tmp-{uuid.uuid4().hex[:8]}"
    if writer:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()
    try:
        weight_map, total = {}, 0
        for file_name, shard in zip(file_names, shards):
            tensors = {}
            for name, leaf, transposed in shard:
                host = _to_host(leaf)
                tensors[name] = np.ascontiguousarray((host.T if transposed else host).astype(np_dtype))
                weight_map[name] = file_name
                total += tensors[name].nbytes
            if writer:
                save_file(tensors, str(tmp / file_name), metadata={"format": "pt"})
            del tensors
        if writer:
            if len(shards) > 1:
                index = {"metadata": {"total_size": total}, "weight_map": weight_map}
                (tmp / INDEX_FILE).write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
            (tmp / CONFIG_FILE).write_text(json.dumps(out_cfg.to_hf(), indent=2) + "\n")
            gen = tokenizer_dir / GENERATION_CONFIG_FILE if tokenizer_dir else None
            if gen is not None and gen.exists():
                shutil.copy2(gen, tmp / GENERATION_CONFIG_FILE)
            else:
                (tmp / GENERATION_CONFIG_FILE).write_text(json.dumps(_generation_config(cfg), indent=2) + "\n")
            for file_name in TOKENIZER_FILES if tokenizer_dir else ():
                if (tokenizer_dir / file_name).exists():
                    shutil.copy2(tokenizer_dir / file_name, tmp / file_name)
            _replace_dir(tmp, out_dir)
    except BaseException:
        if writer:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    if jax.process_count() > 1 and not local:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(f"save_hf {out_dir}")
    log.info("saved %s (%s) to %s in %d file(s)", cfg.family, out_cfg.param_dtype, out_dir, len(shards))
    return out_dir


def _replace_dir(tmp: Path, out_dir: Path) -> None:
    """Rename the finished `tmp` to `out_dir`; an old `out_dir` is moved aside first, then deleted."""
    old = None
    if out_dir.exists():
        old = out_dir.parent / f".{out_dir.name}.old-{uuid.uuid4().hex[:8]}"
        os.rename(out_dir, old)
    os.rename(tmp, out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def find_tokenizer_dir(source: str | Path) -> Path | None:
    """The directory holding the tokenizer of `source`: itself, or one of its two parents (a
    training checkpoint `<out_dir>/checkpoints/<step>` keeps its tokenizer files in
    `<out_dir>/checkpoints/`, beside model_config.json), or None."""
    source = Path(source).absolute()
    for directory in (source, *list(source.parents)[:2]):
        if any((directory / name).exists() for name in TOKENIZER_MARKERS):
            return directory
    return None


# a string that exercises pre-tokenisation: digits, runs of spaces, newlines, punctuation, non-ASCII
_TOKENIZER_PROBE = "def f(x):\n    if x % 2 == 0:\n        return [3, -41, 'a b']  # é\n\n"


def load_tokenizer(path: str | Path):
    """The tokenizer of a Hugging Face directory, encoding exactly as its `tokenizer.json` does.

    transformers picks the tokenizer class from config.json's model type, and for `qwen2` its
    Qwen2Tokenizer rebuilds the pre-tokeniser with Qwen's own rules (digits one by one, other
    whitespace runs), ignoring the one stored in `tokenizer.json`. For a real Qwen checkpoint the
    two agree; for a tokenizer trained here (`coderl sft`'s BPE, GPT-2 pre-tokenisation) they do
    not, and prompts would be encoded differently from the way the model was trained. When the
    class transformers picks encodes a probe string differently from `tokenizer.json` itself, the
    file wins (PreTrainedTokenizerFast over it, with the same special tokens and chat template).
    """
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    path = Path(path)
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    file = path / "tokenizer.json"
    if not file.exists():
        return tokenizer
    from tokenizers import Tokenizer

    expected = Tokenizer.from_file(str(file)).encode(_TOKENIZER_PROBE, add_special_tokens=False).ids
    if tokenizer.encode(_TOKENIZER_PROBE, add_special_tokens=False) == expected:
        return tokenizer
    return PreTrainedTokenizerFast.from_pretrained(str(path))
