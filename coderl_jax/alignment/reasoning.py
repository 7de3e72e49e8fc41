"""Held-out reasoning accuracy: code reasoning and test-output prediction on unseen problems.

    code reasoning   the held-out problem's reference program and its first test input, asked
                     as an alignment prompt (output and the last K variables, traced in the
                     sandbox); accuracy = the final output predicted right (greedy), and the
                     fraction of every item right (`state_accuracy`)
    test output      the problem statement and its first test input, no program; accuracy = the
                     expected output predicted right

Both read the answer's last-line JSON and compare with the tracer's lenient equality; nothing the
model writes is executed. Used by the ablation (train/ablation.py).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from coderl_jax.alignment.answers import parse_answer
from coderl_jax.alignment.harvest import harvest
from coderl_jax.alignment.prompts import alignment_prompt, test_output_prompt
from coderl_jax.alignment.records import AlignmentRecord
from coderl_jax.alignment.rewards import item_correctness
from coderl_jax.data.records import record_input_index
from tracer.compare import lenient_equal


def reference_records(problems: Sequence, tracer, *, k: int = 3, timeout_s: float = 5.0, record_input: str = "first"
                      ) -> list[tuple[object, AlignmentRecord]]:
    """(problem, record) for the problems whose `metadata["solution"]` runs cleanly on its first input
    (or the input `record_input` chooses: `data.records.record_input_index`)."""
    with_solution = [p for p in problems if isinstance(p.metadata.get("solution"), str)]
    fenced = [f"```python\n{p.metadata['solution']}\n```" for p in with_solution]
    out = []
    for p, text in zip(with_solution, fenced):  # one at a time: harvest drops same-output duplicates
        records, _ = harvest(tracer, [p], [text], [0.0], k=k, targets="last", timeout_s=timeout_s,
                             record_input=record_input)
        if records:
            out.append((p, records[0]))
    return out


def _statement(problem) -> str:
    prompt = problem.prompt
    return prompt if isinstance(prompt, str) else "\n\n".join(m["content"] for m in prompt if m["role"] == "user")


def reasoning_accuracy(generate: Callable[[list[str]], list[str]], pairs: Sequence[tuple[object, AlignmentRecord]],
                       record_input: str = "first") -> dict[str, float]:
    """`generate(prompt texts) -> response texts` (greedy); returns the accuracies over `pairs`. The
    test-output question uses the same test input as the records (`record_input`)."""
    if not pairs:
        return {}
    pick = [record_input_index(p.tests["inputs"], record_input) for p, _ in pairs]
    code_prompts = [alignment_prompt(r) for _, r in pairs]
    test_prompts = [test_output_prompt(_statement(p), p.tests["inputs"][i]) for (p, _), i in zip(pairs, pick)]
    responses = generate(code_prompts + test_prompts)
    code_resp, test_resp = responses[:len(pairs)], responses[len(pairs):]
    per_problem: dict[str, dict[str, float]] = {}
    for (p, rec), cr, tr, i in zip(pairs, code_resp, test_resp, pick):
        items = item_correctness(rec, parse_answer(cr))
        answer = parse_answer(tr)
        per_problem[str(p.id)] = {
            "code_reasoning": float(items[0]), "state_accuracy": float(all(items)),
            "item_accuracy": float(np.mean(items)),
            "test_output": float(answer is not None and lenient_equal(answer.final_output,
                                                                      p.tests["outputs"][i].rstrip("\n")))}
    keys = ("code_reasoning", "state_accuracy", "item_accuracy", "test_output")
    return {**{k: float(np.mean([v[k] for v in per_problem.values()])) for k in keys},
            "reasoning_problems": len(pairs), "per_problem": per_problem}
