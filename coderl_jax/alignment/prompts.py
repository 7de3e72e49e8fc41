"""The alignment prompt and the true answer line.

The policy is shown a program and its input and asked for the program's final output and the final
values of the target variables, reasoning first, answering on its last line with one JSON object:

    {"final_output": "<the program's stdout>", "variables": {"<name>": <value>, ...}}

Function locals are named by qualified name (`main.total` is the local `total` of `main`, as the
tracer reports them); module-level names are plain.

Two layouts (`alignment.prompt`), in this project's wording:

    compact   one instruction paragraph (reason first, then the JSON line; what a qualified name
              and a local's final value mean), then the program, its input and the variables
    official  the official code's order and content: the task (predict the output and the listed
              variables' final values), the program, the input, the variables, then numbered
              instructions (reason step by step; no JSON in the reasoning; the JSON object on the
              last line only) and an example of a last line
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


LAYOUTS = ("compact", "official")

OFFICIAL_TASK = (
    "Given the Python program and the input below, predict:\n"
    "1) the program's output (\"final_output\")\n"
    "2) the final values of the variables listed below, at the moment the program has written its output"
)
OFFICIAL_INSTRUCTIONS = (
    "Instructions:\n"
    "1. First reason step by step about how the program runs on the given input.\n"
    "2. Keep JSON out of the reasoning.\n"
    "3. On the last line only, write one strict JSON object with the keys \"final_output\" and \"variables\"."
)
OFFICIAL_EXAMPLE = ("Example of a last line:\n"
                    + json.dumps({"final_output": "3\n6", "variables": {"cnt": 2, "buf": [1, 2]}}))


def alignment_prompt(record: AlignmentRecord, layout: str = "compact") -> str:
    """The user message of the alignment task (rendered through the chat template by the caller)."""
    names = record.target_names
    qualified = any("." in n for n in names)
    if names:
        described = ", ".join(f"`{n}`" for n in names)
        variables = f"Variables: {described}."
        if qualified or layout == "compact":
            variables += " A name like `f.x` means the local variable `x` of function `f`."
    else:
        variables = "Variables: none (give \"variables\": {})."
    stdin = record.stdin if record.stdin else "(empty)"
    program = f"Program:\n```python\n{record.program.rstrip()}\n```"
    given = f"Input (stdin):\n```\n{stdin.rstrip(chr(10))}\n```"
    if layout == "compact":
        return f"{INSTRUCTIONS}\n\n{program}\n\n{given}\n\n{variables}"
    if layout == "official":
        return "\n\n".join((OFFICIAL_TASK, program, given, variables, OFFICIAL_INSTRUCTIONS, OFFICIAL_EXAMPLE))
    raise ValueError(f"alignment.prompt must be one of {LAYOUTS}, got {layout!r}")


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
