"""The alignment prompt and the true answer line.

The policy is shown a program and its input and asked for the program's final output and the final
values of the target variables, reasoning first, answering on its last line with one JSON object:

    {"final_output": "<the program's stdout>", "variables": {"<name>": <value>, ...}}

Function locals are named by qualified name (`main.total` is the local `total` of `main`, as the
tracer reports them); module-level names are plain.
"""

from __future__ import annotations

import json

from coderl_jax.alignment.records import AlignmentRecord

INSTRUCTIONS = (
    "Reason step by step about what the following Python program does when it runs on the given input. "
    "Then, on the last line of your answer and nothing after it, give one JSON object with two keys: "
    "\"final_output\", the program's complete standard output as a string, and \"variables\", an object "
    "mapping each variable named below to its value when the program finishes (for a variable local to a "
    "function, its value when the last call of that function returned), written as JSON."
)


def alignment_prompt(record: AlignmentRecord) -> str:
    """The user message of the alignment task (rendered through the chat template by the caller)."""
    names = record.target_names
    if names:
        described = ", ".join(f"`{n}`" for n in names)
        variables = f"Variables: {described}. A name like `f.x` means the local variable `x` of function `f`."
    else:
        variables = "Variables: none (give \"variables\": {})."
    stdin = record.stdin if record.stdin else "(empty)"
    return (f"{INSTRUCTIONS}\n\nProgram:\n```python\n{record.program.rstrip()}\n```\n\n"
            f"Input (stdin):\n```\n{stdin.rstrip(chr(10))}\n```\n\n{variables}")


def true_output_text(record: AlignmentRecord) -> str:
    """The final output as the answer should state it: the stdout without trailing newlines."""
    return record.output.rstrip("\n")


def answer_line(record: AlignmentRecord) -> str:
    """The correct last line for `record` (the teacher-forced truth of the likelihood reward)."""
    return json.dumps({"final_output": true_output_text(record),
                       "variables": {t["name"]: t["json"] for t in record.targets}}, ensure_ascii=False)


TEST_OUTPUT_INSTRUCTIONS = (
    "Here is a programming problem and one input for it. Reason step by step about what a correct "
    "program prints for this input. Then, on the last line of your answer and nothing after it, give one "
    "JSON object {\"final_output\": <the expected standard output, as a string>, \"variables\": {}}."
)


def test_output_prompt(statement: str, stdin: str) -> str:
    """Test-output prediction (the paper's third benchmark family): the problem, an input, no program."""
    return (f"{TEST_OUTPUT_INSTRUCTIONS}\n\nProblem:\n{statement.strip()}\n\n"
            f"Input (stdin):\n```\n{stdin.rstrip(chr(10))}\n```")
