"""`coderl sft --out DIR`: build the warm-started policy (tokenizer + small Qwen2 + supervised pass).

Steps: problems (the generated task suite, or --train / --heldout files) -> code examples from the
reference solutions and alignment examples from tracing them (their reasoning, by default, one
line per step of the program from a per-line trace: --align-reasoning) -> a byte-level BPE tokenizer
learnt from the training examples (or the plain byte tokenizer) -> a random Qwen2 of the chosen
size -> `train.sft.train_sft` -> a Hugging Face directory (weights stored in bfloat16 by default)
with `sft.json` (settings, data counts, loss curve, scores) -> greedy pass@1 of the saved model on
the held-out (and some training) problems and exact-match on held-out traced states.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

from coderl_jax.errors import UserError
from coderl_jax.sft.scoring import alignment_scores, code_pass_rate

log = logging.getLogger("coderl_jax.sft")

# Options added after warm starts were committed, with the value that re-creates a warm start whose
# sft.json does not record them (its "args" predate the option).
LEGACY_ARGS = {"align_reasoning": "fixed"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from coderl_jax.sft.trainer import SFTConfig

    d = SFTConfig()
    g = parser.add_argument_group("data")
    g.add_argument("--out", required=True, help="output Hugging Face directory (replaced with --overwrite)")
    g.add_argument("--train", help="training problems (JSONL / parquet with metadata.solution); default: generate "
                                   "the task suite")
    g.add_argument("--heldout", help="held-out problems for the final pass@1 (default: the suite's held-out split)")
    g.add_argument("--suite-seed", type=int, default=0, help="seed of the generated task suite (default 0)")
    g.add_argument("--n-train", type=int, default=None, help="training problems to generate (suite default)")
    g.add_argument("--n-heldout", type=int, default=None, help="held-out problems to generate (suite default)")
    g.add_argument("--rl-reserve", type=float, default=0.0,
                   help="leave the training problems of this fraction of the suite's training bigrams to RL "
                        "(suite.reserve_for_rl; configs/grpo_cpu.py trains on them): the warm start never sees "
                        "those compositions (default 0: train on every training problem)")
    g.add_argument("--align-inputs", type=int, default=1,
                   help="test inputs per problem traced into alignment examples (default 1)")
    g.add_argument("--align-input", choices=("first", "shortest"), default="first",
                   help="which test inputs the alignment examples run on: the first --align-inputs of each "
                        "problem, or its shortest ones (smaller values to state; as alignment.record_input="
                        "shortest picks for RL records and the probe; default first)")
    g.add_argument("--align-k", type=int, default=3, help="target variables per alignment example (default 3)")
    g.add_argument("--align-max-value-chars", type=int, default=200,
                   help="target variables whose value renders longer are not asked about (as "
                        "alignment.max_value_chars; default 200)")
    g.add_argument("--align-max-output-chars", type=int, default=0,
                   help="programs whose output is longer are not made into alignment examples (as "
                        "alignment.max_output_chars; default 0: no limit)")
    g.add_argument("--align-reasoning", choices=("steps", "fixed"), default="steps",
                   help="reasoning of the alignment answers: steps (one line per step of the program with the "
                        "value it leaves, and the partial values of folds, from a per-line trace) or fixed (one "
                        "fixed sentence, as the committed warm starts were made; default steps)")
    g.add_argument("--reasoning-max-lines", type=int, default=10,
                   help="step reasoning: lines at most, the last kept (default 10)")
    g.add_argument("--reasoning-max-chars", type=int, default=120,
                   help="step reasoning: characters per line at most, values cut (default 120)")
    g.add_argument("--align-own-samples", type=int, default=0,
                   help="with --init: the --init policy also writes this many programs per training problem "
                        "(at --align-own-temperature); those that fail their tests but run and print become "
                        "alignment examples too, on the input --align-input picks, as RL harvests its own "
                        "failed rollouts (default 0: reference solutions only)")
    g.add_argument("--align-own-temperature", type=float, default=1.0,
                   help="sampling temperature of --align-own-samples (default 1.0; 0: greedy)")
    g.add_argument("--test-output-inputs", type=int, default=0,
                   help="test-output prediction examples per training problem, in the alignment slot "
                        "(statement + input -> expected output; default 0: none)")
    g = parser.add_argument_group("model")
    g.add_argument("--init", help="continue from this Hugging Face directory (a warm start made by coderl sft): "
                                  "its weights, size and tokenizer replace the options below")
    g.add_argument("--vocab-size", type=int, default=1024,
                   help="byte-level BPE vocabulary learnt from the training examples; 0: the plain byte tokenizer")
    g.add_argument("--hidden", type=int, default=256, help="hidden size (default 256)")
    g.add_argument("--layers", type=int, default=4, help="decoder layers (default 4)")
    g.add_argument("--heads", type=int, default=4, help="attention heads (default 4)")
    g.add_argument("--kv-heads", type=int, default=2, help="key/value heads (default 2)")
    g.add_argument("--intermediate", type=int, default=704, help="MLP size (default 704)")
    g.add_argument("--save-dtype", choices=("bfloat16", "float32"), default="bfloat16",
                   help="dtype of the stored weights (default bfloat16: half the size)")
    g = parser.add_argument_group("training")
    g.add_argument("--steps", type=int, default=d.steps)
    g.add_argument("--batch", type=int, default=d.batch_size)
    g.add_argument("--lr", type=float, default=d.learning_rate)
    g.add_argument("--warmup", type=int, default=d.warmup_steps)
    g.add_argument("--schedule", choices=("constant", "warmup_constant", "cosine"), default=d.schedule)
    g.add_argument("--min-lr-ratio", type=float, default=d.min_lr_ratio)
    g.add_argument("--weight-decay", type=float, default=d.weight_decay)
    g.add_argument("--code-fraction", type=float, default=d.code_fraction,
                   help=f"share of each batch that is code examples; the rest alignment (default {d.code_fraction})")
    g.add_argument("--max-len", type=int, default=d.max_len,
                   help=f"longest training row in tokens; longer examples are dropped (default {d.max_len})")
    g.add_argument("--length-bucket", type=int, default=d.length_bucket,
                   help="batch rows of similar length, padded to a multiple of this many tokens (default 0: "
                        "every row padded to its kind's longest example)")
    g.add_argument("--seed", type=int, default=d.seed, help="model init and batch order")
    g.add_argument("--log-every", type=int, default=d.log_every)
    g = parser.add_argument_group("evaluation")
    g.add_argument("--eval-max", type=int, default=0, help="at most this many held-out problems (default 0: all)")
    g.add_argument("--eval-train", type=int, default=100,
                   help="training problems scored for train pass@1 (default 100; 0: none)")
    g.add_argument("--eval-align", type=int, default=100,
                   help="held-out traced states scored for alignment exact-match (default 100; 0: none)")
    g.add_argument("--eval-every", type=int, default=0,
                   help="also score held-out greedy pass@1 every N steps during training (a multiple of "
                        "--log-every; 0: only at the end)")
    g.add_argument("--max-new-tokens", type=int, default=256, help="greedy decoding budget (default 256)")
    g.add_argument("--no-eval", action="store_true", help="skip the final evaluation")
    g.add_argument("--workers", type=int, default=2, help="tracer sandbox workers")
    g.add_argument("--overwrite", action="store_true", help="replace an existing --out directory")
    g.add_argument("--quiet", action="store_true", help="no progress bar")


def _fail(msg: str) -> int:
    print(f"coderl sft: {msg}", file=sys.stderr)
    return 2


def _check_args(args) -> str | None:
    """An error message for a bad argument combination, or None."""
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        return f"--out {out}: exists and is not a directory"
    if out.is_dir() and any(out.iterdir()) and not args.overwrite:
        return f"--out {out}: exists and is not empty (pass --overwrite to replace it)"
    if args.init is not None:
        init = Path(args.init)
        if not (init / "config.json").is_file() or not (init / "tokenizer.json").is_file():
            return f"--init {init}: not a model directory (needs config.json and tokenizer.json)"
        if init.resolve() == out.resolve():
            return f"--init {init}: the same directory as --out"
    if args.align_own_samples < 0 or args.align_own_temperature < 0:
        return "--align-own-samples and --align-own-temperature must be >= 0"
    if args.align_own_samples and args.init is None:
        return "--align-own-samples needs --init: the programs come from the policy it continues"
    if args.rl_reserve and args.train:
        return "--rl-reserve divides the generated task suite; it cannot be used with --train"
    for name in ("train", "heldout"):
        value = getattr(args, name)
        if value is not None and not Path(value).is_file():
            return f"--{name} {value}: no such file"
    positive = {"--steps": args.steps, "--batch": args.batch, "--hidden": args.hidden, "--layers": args.layers,
                "--heads": args.heads, "--kv-heads": args.kv_heads, "--intermediate": args.intermediate,
                "--max-len": args.max_len, "--max-new-tokens": args.max_new_tokens, "--workers": args.workers,
                "--log-every": args.log_every}
    for flag, value in positive.items():
        if value < 1:
            return f"{flag}={value} must be >= 1"
    if args.lr <= 0:
        return f"--lr={args.lr} must be > 0"
    if args.length_bucket < 0:
        return f"--length-bucket={args.length_bucket} must be >= 0"
    if not 0.0 <= args.code_fraction <= 1.0:
        return f"--code-fraction={args.code_fraction} must be in [0, 1]"
    if not 0.0 <= args.rl_reserve < 1.0:
        return f"--rl-reserve={args.rl_reserve} must be in [0, 1)"
    if args.hidden % args.heads:
        return f"--hidden={args.hidden} must be divisible by --heads={args.heads}"
    if args.heads % args.kv_heads:
        return f"--heads={args.heads} must be a multiple of --kv-heads={args.kv_heads}"
    if args.reasoning_max_lines < 1:
        return f"--reasoning-max-lines={args.reasoning_max_lines} must be >= 1"
    if args.reasoning_max_chars < 40:
        return f"--reasoning-max-chars={args.reasoning_max_chars} must be >= 40"
    if args.vocab_size and args.vocab_size < 260:
        return f"--vocab-size={args.vocab_size} must be 0 (byte tokenizer) or >= 260"
    for flag in ("align_inputs", "test_output_inputs", "eval_max", "eval_train", "eval_align", "eval_every"):
        if getattr(args, flag) < 0:
            return f"--{flag.replace('_', '-')}={getattr(args, flag)} must be >= 0"
    if args.eval_every and (args.eval_every % args.log_every or args.no_eval):
        return (f"--eval-every={args.eval_every} must be a multiple of --log-every={args.log_every} "
                "(and not with --no-eval)")
    return None


# ------------------------------------------------------------------------------------------------
# Data


def load_problems(args):
    """(train problems, held-out problems, where they came from)."""
    from coderl_jax.data.readers import read_problems

    if args.train:
        train, _ = read_problems(args.train, strict=True)
        heldout = read_problems(args.heldout, strict=True)[0] if args.heldout else []
        return train, heldout, {"train": str(args.train), "heldout": str(args.heldout or "")}
    from coderl_jax.data import suite

    kwargs = {k: v for k, v in (("n_train", args.n_train), ("n_heldout", args.n_heldout)) if v is not None}
    train, heldout = split_suite(suite.generate_suite(args.suite_seed, **kwargs))
    if args.rl_reserve:
        train, reserved = suite.reserve_for_rl(train, args.suite_seed, args.rl_reserve)
        kwargs.update(rl_reserve=args.rl_reserve, rl_reserved_problems=len(reserved))
    if args.heldout:
        heldout = read_problems(args.heldout, strict=True)[0]
    return train, heldout, {"suite_seed": args.suite_seed, **kwargs}


def split_suite(generated):
    """(train, heldout) Problems from what `generate_suite` returns: a pair, a {"train", "heldout"}
    mapping, or one list whose rows carry metadata.split."""
    from coderl_jax.data.records import Problem

    def as_problems(rows):
        return [r if isinstance(r, Problem) else Problem(r["id"], r["prompt"], r["tests"], r.get("metadata") or {})
                for r in rows]

    if isinstance(generated, dict):
        return as_problems(generated["train"]), as_problems(generated.get("heldout", []))
    if isinstance(generated, tuple) and len(generated) == 2:
        return as_problems(generated[0]), as_problems(generated[1])
    rows = as_problems(generated)
    return ([p for p in rows if p.metadata.get("split", "train") == "train"],
            [p for p in rows if p.metadata.get("split") == "heldout"])


# ------------------------------------------------------------------------------------------------
# Evaluation


def evaluate_warm_start(model_dir: Path, pool, train, heldout, heldout_records, args) -> dict:
    """Greedy pass@1 of the saved model on held-out (and some training) problems, and its
    alignment answers on traced held-out programs."""
    from coderl_jax.models.hf_io import load_hf, load_tokenizer
    from coderl_jax.sampling.sampler import Sampler

    cfg, params = load_hf(model_dir)
    tokenizer = load_tokenizer(model_dir)
    sampler = Sampler(cfg, params, tokenizer)
    heldout = heldout[: args.eval_max] if args.eval_max else heldout
    t0 = time.perf_counter()
    result = {"heldout": code_pass_rate(sampler, tokenizer, pool, heldout, max_new_tokens=args.max_new_tokens)}
    if args.eval_train:
        result["train"] = code_pass_rate(sampler, tokenizer, pool, train[: args.eval_train],
                                         max_new_tokens=args.max_new_tokens)
    result["heldout_alignment"] = alignment_scores(sampler, tokenizer, heldout_records,
                                                   max_new_tokens=args.max_new_tokens)
    result["eval_s"] = time.perf_counter() - t0
    return result


# ------------------------------------------------------------------------------------------------


def build_tokenizer(examples, vocab_size: int):
    from coderl_jax.models.bpe import train_bpe_tokenizer
    from coderl_jax.models.tiny import byte_tokenizer

    if not vocab_size:
        return byte_tokenizer()
    texts = [t for ex in examples for t in (ex.prompt, ex.response)] + ["user", "assistant", "system"]
    return train_bpe_tokenizer(texts, vocab_size)


class SFTError(UserError, ValueError):
    """A warm start that cannot be built from the given data (`coderl sft` reports it in one line)."""


@dataclasses.dataclass
class SFTData:
    """The examples a warm start trains on, its tokenizer and what is written about them."""

    train: list  # training problems
    heldout: list  # held-out problems
    heldout_records: list  # traced held-out programs for the alignment score
    tokenizer: object
    encoded: object  # trainer.Encoded: the examples as token rows
    info: dict  # counts written to sft.json's "data"


def prepare_data(args, pool, train, heldout, source: str) -> SFTData:
    """Code examples from the reference solutions, alignment examples from tracing them (and
    test-output examples), a tokenizer learnt from them, and the encoded rows."""
    from coderl_jax.sft import trainer as sft

    code = sft.code_examples(train)
    if not code:
        raise SFTError("no training problem has metadata.solution (a reference program)")
    filters = {"max_value_chars": args.align_max_value_chars, "max_output_chars": args.align_max_output_chars}
    records, harvest_counts = ([], {}) if args.code_fraction == 1.0 or not args.align_inputs else \
        sft.alignment_records(pool, train, k=args.align_k, inputs_per_problem=args.align_inputs, seed=args.seed,
                              record_input=args.align_input, **filters)
    own_info = None
    if args.align_own_samples and args.code_fraction < 1.0:
        own, own_info = own_program_records(args, pool, train, filters)
        records = records + own
    heldout_records = [] if args.no_eval or not args.eval_align else sft.alignment_records(
        pool, heldout[: args.eval_align], k=args.align_k, seed=args.seed + 1, record_input=args.align_input,
        **filters)[0]
    reasonings, reasoning_counts = None, None
    if args.align_reasoning == "steps" and records:
        from coderl_jax.alignment.steps import StepsConfig

        reasonings, reasoning_counts = sft.step_reasonings(
            pool, records, steps_cfg=StepsConfig(max_lines=args.reasoning_max_lines,
                                                 max_line_chars=args.reasoning_max_chars))
    align = sft.align_examples(records, reasonings)
    test_output = sft.test_output_examples(train, inputs_per_problem=args.test_output_inputs) \
        if args.test_output_inputs and args.code_fraction < 1.0 else []
    align += test_output
    if not align and args.code_fraction < 1.0:
        log.warning("no alignment examples (harvest counts %s): training on code only", harvest_counts)
    if args.init is not None:
        from coderl_jax.models.hf_io import load_tokenizer

        tokenizer = load_tokenizer(args.init)
    else:
        tokenizer = build_tokenizer(code + align, args.vocab_size)
    enc = sft.encode_examples(code + align, tokenizer, max_len=args.max_len)
    lengths = enc.lengths()
    info = {"train_problems": len(train), "heldout_problems": len(heldout), "code_examples": len(code),
            "without_solution": len(train) - len(code),
            "align_examples": len(align), "test_output_examples": len(test_output), "dropped_too_long": enc.dropped,
            "harvest": harvest_counts, "vocab_size": len(tokenizer),
            "mean_tokens": float(lengths.mean()) if len(lengths) else 0.0,
            "max_tokens": int(lengths.max()) if len(lengths) else 0, "source": source}
    if own_info is not None:
        info["own_programs"] = own_info
    if reasoning_counts is not None:  # (absent for the fixed sentence, as in older sft.json files)
        info["align_reasoning"] = reasoning_counts
    return SFTData(train, heldout, heldout_records, tokenizer, enc, info)


def own_program_records(args, pool, train, filters: dict) -> tuple[list, dict]:
    """Alignment records of the --init policy's own failed programs on the training problems."""
    from coderl_jax.models.hf_io import load_hf, load_tokenizer
    from coderl_jax.sampling.sampler import Sampler
    from coderl_jax.sft.scoring import failed_program_records

    model_cfg, params = load_hf(args.init)
    tokenizer = load_tokenizer(args.init)
    records, info = failed_program_records(
        Sampler(model_cfg, params, tokenizer), tokenizer, pool, train, k=args.align_k,
        max_new_tokens=args.max_new_tokens, samples=args.align_own_samples,
        temperature=args.align_own_temperature, seed=args.seed, record_input=args.align_input, **filters)
    log.info("own programs: %d attempts, pass rate %.3f, %d failed programs harvested", info["attempts"],
             info["pass@1"], len(records))
    return records, info


def train_policy(args, data: SFTData, pool, cfg):
    """A random Qwen2 of the chosen size trained on the data; returns (model config, params, history)."""
    from coderl_jax.models.transformer import init_params
    from coderl_jax.sft import trainer as sft

    if args.init is not None:
        from coderl_jax.models.hf_io import load_hf

        model_cfg, params = load_hf(args.init)
    else:
        model_cfg = sft.sft_model_config(data.tokenizer, hidden_size=args.hidden, num_layers=args.layers,
                                         num_heads=args.heads, num_kv_heads=args.kv_heads,
                                         intermediate_size=args.intermediate)
        params = init_params(model_cfg, args.seed)
    c = model_cfg
    print(f"model: qwen2, {c.num_params() / 1e6:.2f}M parameters, hidden {c.hidden_size}, {c.num_layers} layers, "
          f"{c.num_heads} heads ({c.num_kv_heads} kv), intermediate {c.intermediate_size}"
          + (f", from {args.init}" if args.init else ""), flush=True)

    def on_log(rec):
        log.info("step %d loss %.4f grad_norm %.3f lr %.2e %.0f tokens/s", rec["step"], rec["loss"],
                 rec["grad_norm"], rec["lr"], rec["tokens_per_s"])

    def on_eval(step, params):
        from coderl_jax.sampling.sampler import Sampler

        problems = data.heldout[: args.eval_max] if args.eval_max else data.heldout
        sampler = Sampler(model_cfg, params, data.tokenizer)
        rate = code_pass_rate(sampler, data.tokenizer, pool, problems, max_new_tokens=args.max_new_tokens)["pass@1"]
        log.info("step %d held-out greedy pass@1 %.3f over %d problems", step, rate, len(problems))
        out = {"eval/heldout_pass@1": rate}
        if data.heldout_records:
            align = alignment_scores(sampler, data.tokenizer, data.heldout_records, max_new_tokens=args.max_new_tokens)
            log.info("step %d held-out alignment: answers parsed %.3f, items right %.3f over %d records", step,
                     align["parsed"], align["item_accuracy"], align["records"])
            out.update({"eval/heldout_align_parsed": align["parsed"], "eval/heldout_align_items": align["item_accuracy"]})
        return out

    params, history = sft.train_sft(model_cfg, params, data.encoded, cfg, pad_id=model_cfg.pad_token_id,
                                    on_log=on_log, progress=not args.quiet, eval_every=args.eval_every,
                                    on_eval=on_eval)
    return model_cfg, params, history


def init_lineage(init_dir: str | Path) -> dict | None:
    """What made the model that an `--init` run continues from, as its sft.json records it: the
    arguments, settings, data counts, training time and scores, with the lineage of its own
    `--init` nested under "init" (None when the directory has no sft.json)."""
    path = Path(init_dir) / "sft.json"
    if not path.is_file():
        return None
    rec = json.loads(path.read_text())
    lineage = {k: rec[k] for k in ("args", "sft", "data", "train_s", "init") if k in rec}
    if "eval" in rec:
        ev = rec["eval"]
        lineage["eval"] = {"heldout_pass@1": ev.get("heldout", {}).get("pass@1"),
                           "heldout_problems": ev.get("heldout", {}).get("problems"),
                           "heldout_alignment": {k: ev.get("heldout_alignment", {}).get(k)
                                                 for k in ("records", "parsed", "item_accuracy", "exact")}}
    return lineage


def save_policy(args, data: SFTData, model_cfg, params, history, cfg) -> tuple[Path, dict]:
    """The Hugging Face directory and its sft.json (settings, data counts, loss curve, and with
    `--init` what made the starting model: `init_lineage`)."""
    import jax.numpy as jnp

    from coderl_jax.models.hf_io import save_hf

    lineage = init_lineage(args.init) if args.init is not None else None  # read before --out is replaced
    out = Path(args.out)
    with tempfile.TemporaryDirectory() as tok_dir:
        data.tokenizer.save_pretrained(tok_dir)
        save_hf(model_cfg, params, out, tokenizer_dir=tok_dir, dtype=jnp.dtype(args.save_dtype),
                overwrite=args.overwrite)
    model_info = {"hidden": model_cfg.hidden_size, "layers": model_cfg.num_layers, "heads": model_cfg.num_heads,
                  "kv_heads": model_cfg.num_kv_heads, "intermediate": model_cfg.intermediate_size,
                  "params": model_cfg.num_params(),
                  "save_dtype": args.save_dtype}
    info = {"args": {k: v for k, v in vars(args).items() if k != "command"}, "sft": dataclasses.asdict(cfg),
            "model": model_info, "data": data.info, "history": history, "train_s": history[-1]["elapsed_s"],
            "tokens_per_s": overall_tokens_per_s(history)}
    if lineage is not None:
        info["init"] = lineage
    (out / "sft.json").write_text(json.dumps(info, indent=2) + "\n")
    return out, info


def main(args) -> int:
    err = _check_args(args)
    if err:
        return _fail(err)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from tracer import TracerPool

    from coderl_jax.data.records import DataError
    from coderl_jax.sft import trainer as sft

    cfg = sft.SFTConfig(steps=args.steps, batch_size=args.batch, max_len=args.max_len, learning_rate=args.lr,
                        warmup_steps=args.warmup, schedule=args.schedule, min_lr_ratio=args.min_lr_ratio,
                        weight_decay=args.weight_decay, code_fraction=args.code_fraction, seed=args.seed,
                        log_every=args.log_every, length_bucket=args.length_bucket)
    t_start = time.perf_counter()
    try:
        train, heldout, source = load_problems(args)
    except (DataError, OSError) as e:
        return _fail(str(e))
    except ImportError as e:
        return _fail(f"cannot generate the task suite ({e}); pass --train FILE")
    with TracerPool(workers=args.workers) as pool:
        data = prepare_data(args, pool, train, heldout, source)
        print("data: " + json.dumps(data.info), flush=True)
        model_cfg, params, history = train_policy(args, data, pool, cfg)
        out, info = save_policy(args, data, model_cfg, params, history, cfg)
        print(f"trained {cfg.steps} steps in {info['train_s']:.0f} s ({info['tokens_per_s']:.0f} tokens/s); "
              f"loss {history[0]['loss']:.3f} -> {history[-1]['loss']:.3f}; saved {out}", flush=True)
        if args.no_eval:
            return 0
        scores = evaluate_warm_start(out, pool, train, heldout, data.heldout_records, args)
    info["eval"] = scores
    info["total_s"] = time.perf_counter() - t_start
    (out / "sft.json").write_text(json.dumps(info, indent=2) + "\n")
    h, tr, al = scores["heldout"], scores.get("train", {}), scores["heldout_alignment"]
    fmt = lambda x: "n/a" if x is None else f"{100 * x:.1f}%"  # noqa: E731
    print(f"held-out greedy pass@1: {fmt(h['pass@1'])} over {h['problems']} problems; "
          f"train pass@1: {fmt(tr.get('pass@1'))} over {tr.get('problems', 0)}; "
          f"held-out alignment exact: {fmt(al['exact'])} over {al['records']} records "
          f"(answers parsed {fmt(al.get('parsed'))}, items right {fmt(al.get('item_accuracy'))}) "
          f"(eval {scores['eval_s']:.0f} s)", flush=True)
    return 0


def overall_tokens_per_s(history: list[dict]) -> float:
    """Tokens/s (real tokens, padding excluded) over the logged windows after the first, which
    includes compilation; over all of them when there is only one."""
    rest = history[1:] or history
    start = history[0]["elapsed_s"] if len(history) > 1 else 0.0
    return sum(h["tokens"] for h in rest) / max(rest[-1]["elapsed_s"] - start, 1e-9)
