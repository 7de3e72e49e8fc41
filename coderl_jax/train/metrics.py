"""Per-step metrics: `metrics.jsonl` (one JSON object per step, with `step`), TensorBoard events,
and Weights & Biases when configured.

On resume the JSONL file is cut back to the restored step, so a killed-and-resumed run leaves the
same file as an uninterrupted one. `read_metrics` reads it back (the report and the tests use it).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from coderl_jax.data.readers import iter_jsonl


def _clean(value: Any):
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no nan/inf; keep them visible as strings
    return value


class MetricsWriter:
    def __init__(self, out_dir: str | Path, *, resume_step: int | None = None, tensorboard: bool = True,
                 wandb_project: str | None = None, run_config: dict | None = None, is_main: bool = True):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.out_dir / "metrics.jsonl"
        self.is_main = is_main
        if is_main:
            self._truncate_after(resume_step)
        self._file = open(self.path, "a", encoding="utf-8") if is_main else None
        self._tb = None
        if tensorboard and is_main:
            try:
                from tensorboardX import SummaryWriter

                self._tb = SummaryWriter(str(self.out_dir / "tensorboard"))
            except ImportError:  # optional dependency
                self._tb = None
        self._wandb = None
        if wandb_project and is_main:
            import wandb  # only when asked for

            self._wandb = wandb.init(project=wandb_project, config=run_config or {}, dir=str(self.out_dir))

    def _truncate_after(self, step: int | None) -> None:
        if not self.path.exists():
            return
        keep = [r for r in read_metrics(self.path) if step is None or r.get("step", 0) <= step]
        tmp = self.path.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in keep), encoding="utf-8")
        tmp.replace(self.path)

    def write(self, step: int, metrics: dict[str, Any]) -> dict:
        record = {"step": int(step), **{k: _clean(v) for k, v in sorted(metrics.items())}}
        if not self.is_main:
            return record
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        if self._tb is not None:
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                    self._tb.add_scalar(key.replace("@", "_at_"), value, step)  # TB names: no '@'
        if self._wandb is not None:
            self._wandb.log(record, step=step)
        return record

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()


def read_metrics(path: str | Path) -> list[dict]:
    """The records of a metrics file (or of `<dir>/metrics.jsonl`), in file order.

    A run killed mid-write leaves its last line cut short, so a last line that is not a JSON
    object is skipped; any other such line raises `DataError` naming the file and the line."""
    path = Path(path)
    if path.is_dir():
        path = path / "metrics.jsonl"
    bad: list = []
    rows = []
    for _, row in iter_jsonl(path, on_bad_row=bad.append):
        if bad:  # a bad line with a good one after it: not a cut last line
            raise bad[0]
        rows.append(row)
    if len(bad) > 1:
        raise bad[0]
    return rows
