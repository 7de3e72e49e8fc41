"""A tensorflow-datasets builder: local problem files -> array_record, no TensorFlow needed.

    ds = build_problem_dataset("train.parquet", "/data/tfds", test_path="test.jsonl")
    ds.path    # /data/tfds/coderl_problems/train_<hash16>/1.0.0
    ds.splits  # {"train": 24887, "test": 500}

Each split holds one example per kept problem: `{"id": str, "problem": str}` where `problem`
is `Problem.to_json()`. Examples are stored in file order (tfds shuffling is disabled; the
grain pipeline shuffles). Reading needs only the directory (`tfds.builder_from_directory`),
not this module, and never TensorFlow.

Rebuilds happen only when something that changes the content changes: the builder config name
is the source file stem plus a hash of the source files' bytes, the reader options (length
limit, tokenizer identity and chat template, system prompt) and FORMAT_VERSION. A built dataset
is found again by that name and reused. Beside tfds's own files, the version directory holds
`coderl_manifest.json` with the sources, their hashes, the options and each split's ReadReport.

Several hosts may call `build_problem_dataset` on a shared directory: tfds writes into a
temporary directory and renames it, so a race costs time, not correctness. Building on
process 0 first and then reading everywhere is cheaper.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

import tensorflow_datasets as tfds

from coderl_jax.data.records import DataError, Problem, ReadReport
from coderl_jax.data.readers import read_problems

log = logging.getLogger(__name__)

DATASET_NAME = "coderl_problems"
FORMAT_VERSION = "1.0.0"
MANIFEST = "coderl_manifest.json"


@dataclasses.dataclass
class ProblemDataset:
    """A prepared dataset: where it lives and what went into it."""

    path: str                        # the tfds version directory (holds dataset_info.json)
    splits: dict[str, int]           # examples per split
    reports: dict[str, ReadReport]   # what the readers kept and skipped, per split
    fingerprint: str                 # hash of sources + options; part of the config name
    built: bool = False              # True when this call wrote it, False when it was reused


class CoderlProblems(tfds.core.GeneratorBasedBuilder):
    """Problems as JSON strings. Construct through `build_problem_dataset`, which gives each
    source its own config; the problems to write are passed in, already read and validated."""

    VERSION = tfds.core.Version(FORMAT_VERSION)
    RELEASE_NOTES = {FORMAT_VERSION: "id + JSON-serialised Problem per example."}

    @tfds.core.utils.classproperty
    @classmethod
    def code_path(cls):
        # No checksums file or packaged metadata next to the code: skip tfds's search for them
        # (which would also need the optional importlib_resources package).
        return None

    def __init__(self, *, problems: dict[str, list[Problem]] | None = None, **kwargs):
        self._problems = problems or {}
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description="Coding problems (prompt, tracer tests object, metadata) as JSON.",
            features=tfds.features.FeaturesDict({"id": tfds.features.Text(), "problem": tfds.features.Text()}),
            disable_shuffling=True,
        )

    def _split_generators(self, dl_manager):
        del dl_manager
        if not self._problems:
            raise DataError("CoderlProblems has no problems to write; use build_problem_dataset()")
        return {split: self._generate_examples(problems) for split, problems in self._problems.items()}

    def _generate_examples(self, problems: list[Problem]):
        for i, p in enumerate(problems):
            yield i, {"id": p.id, "problem": p.to_json()}


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def tokenizer_fingerprint(tokenizer: Any) -> str | None:
    """Identity of a tokenizer for cache keys: name, vocabulary size and chat template."""
    if tokenizer is None:
        return None
    parts = [str(getattr(tokenizer, "name_or_path", "")), str(len(tokenizer)),
             str(getattr(tokenizer, "chat_template", None) or "")]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def build_problem_dataset(train_path: str | os.PathLike, data_dir: str | os.PathLike, *,
                          test_path: str | os.PathLike | None = None, tokenizer: Any = None,
                          max_prompt_tokens: int | None = None, system: str | None = None,
                          raw_prompts: bool = False, strict: bool = False, max_examples: int = 5,
                          ) -> ProblemDataset:
    """Turn problem files into an array_record tfds dataset under `data_dir` (reused if unchanged).

    `train_path` becomes split "train", `test_path` (optional) split "test". Rows that fail
    validation or the prompt length limit are skipped and reported (logged at WARNING, and kept
    in the manifest and in the returned reports); with `strict=True` the first one raises.
    """
    sources = {"train": str(train_path)}
    if test_path is not None:
        sources["test"] = str(test_path)
    for split, path in sources.items():
        if not os.path.isfile(path):
            raise DataError(f"no such file (split {split!r})", path=path, reason="unreadable_file")
    options = {"max_prompt_tokens": max_prompt_tokens, "system": system, "raw_prompts": raw_prompts,
               "tokenizer": tokenizer_fingerprint(tokenizer) if max_prompt_tokens is not None else None}
    hashes = {split: file_sha256(path) for split, path in sources.items()}
    key = json.dumps({"format": FORMAT_VERSION, "sources": hashes, "options": options}, sort_keys=True)
    fingerprint = hashlib.sha256(key.encode()).hexdigest()
    stem = re.sub(r"[^a-z0-9]+", "_", Path(sources["train"]).name.split(".")[0].lower()).strip("_") or "problems"
    config = tfds.core.BuilderConfig(name=f"{stem}_{fingerprint[:16]}",
                                     description=f"built from {', '.join(sources.values())}")
    version_dir = Path(data_dir) / DATASET_NAME / config.name / FORMAT_VERSION
    manifest_path = version_dir / MANIFEST

    if manifest_path.is_file() and (version_dir / "dataset_info.json").is_file():
        manifest = json.loads(manifest_path.read_text())
        reports = {s: ReadReport.from_dict(r) for s, r in manifest["reports"].items()}
        return ProblemDataset(str(version_dir), manifest["splits"], reports, fingerprint, built=False)

    problems, reports = {}, {}
    for split, path in sources.items():
        problems[split], reports[split] = read_problems(
            path, tokenizer=tokenizer, max_prompt_tokens=max_prompt_tokens, system=system,
            raw_prompts=raw_prompts, strict=strict, max_examples=max_examples)
        if reports[split].num_skipped:
            log.warning("skipped bad rows: %s", reports[split].summary())
        if not problems[split]:
            raise DataError(f"no usable problems in split {split!r}: {reports[split].summary()}", path=path,
                            reason="unreadable_file")
    builder = CoderlProblems(problems=problems, config=config, data_dir=str(data_dir), file_format="array_record")
    builder.download_and_prepare()
    splits = {split: len(ps) for split, ps in problems.items()}
    manifest = {"format": FORMAT_VERSION, "sources": sources, "sha256": hashes, "options": options,
                "fingerprint": fingerprint, "splits": splits,
                "reports": {s: r.to_dict() for s, r in reports.items()}}
    tmp = manifest_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=1))
    tmp.replace(manifest_path)
    return ProblemDataset(str(version_dir), splits, reports, fingerprint, built=True)


def find_prepared(path: str | os.PathLike) -> str:
    """The tfds version directory for `path`: itself if it holds dataset_info.json, else the one
    prepared dataset below it (a data_dir with exactly one coderl_problems build)."""
    p = Path(path)
    if (p / "dataset_info.json").is_file():
        return str(p)
    found = sorted(str(d.parent) for d in p.glob(f"**/{FORMAT_VERSION}/dataset_info.json"))
    if len(found) == 1:
        return found[0]
    if not found:
        raise DataError("no prepared dataset here (no dataset_info.json); build one with "
                        "build_problem_dataset()", path=str(p), reason="unreadable_file")
    raise DataError("several prepared datasets here; pass one of: " + ", ".join(found), path=str(p),
                    reason="unreadable_file")


def open_split(path: str | os.PathLike, split: str):
    """A random-access data source over one split (`tfds` ArrayRecordDataSource); elements are
    `{"id": bytes, "problem": bytes}`."""
    version_dir = find_prepared(path)
    builder = tfds.builder_from_directory(version_dir)
    if split not in builder.info.splits:
        raise DataError(f"no split {split!r} (have {', '.join(builder.info.splits)})", path=version_dir,
                        reason="unreadable_file")
    return builder.as_data_source(split=split)
