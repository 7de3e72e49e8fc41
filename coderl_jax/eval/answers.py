"""Reading a model's response: its code, and its predicted values. Nothing here executes anything.

Code (code generation): `coderl_jax.data.responses.extract_code`, the rule the training reward
uses: the last fenced block (```python, ```py, ```python3 or a bare ```; an unclosed final fence
runs to the end of the response). The scorer falls back to the whole response when there is none.

Answers (output / input / test-output prediction):

1. the answer block: the text of the last ``[ANSWER] ... [/ANSWER]`` pair (CRUXEval and
   LiveCodeBench execution; an unclosed final ``[ANSWER]`` runs to the end), else the last fenced
   block (LiveCodeBench test-output prediction), else the whole response;
2. in that block, the last ``assert <call> == <value>`` statement, found by parsing the block
   with `ast.parse` (parsing builds a syntax tree and runs nothing), or, when the block is not
   valid Python, the last line that starts with ``assert`` (on its own, then with the lines
   after it);
3. output prediction takes the source text of ``<value>``; input prediction the arguments of
   ``<call>``, which must call the expected function. Without an assert, the block itself is the
   value (output prediction), or a call ``f(...)`` or a bare argument list (input prediction).

Boxed answers (the paper's code reasoning prompt asks for ``\\boxed{output}``): the text of the
last ``\\boxed{...}`` with balanced braces (braces inside quoted strings do not count), then
rules 2-3 on that text, the ``assert`` optional (so ``\\boxed{f(1) == 3}`` gives ``3``). No box
is no answer.

The value texts are then parsed with `tracer.compare.parse_prediction`, which accepts literal
syntax only (so ``x or True`` and ``__import__('os')`` are parse failures, i.e. wrong answers).
"""

from __future__ import annotations

import ast
import re
from typing import Any

from coderl_jax.data.responses import extract_code
from tracer.compare import MAX_PREDICTION_CHARS, parse_prediction

__all__ = ["extract_code", "answer_block", "boxed_text", "predicted_output_text", "predicted_boxed_text",
           "predicted_arguments", "AnswerError"]

_ANSWER = re.compile(r"\[ANSWER\](.*?)(?:\[/ANSWER\]|\Z)", re.DOTALL)
MAX_ANSWER_CHARS = MAX_PREDICTION_CHARS


def answer_block(response: str) -> str:
    """The part of a response that holds the answer (rule 1 above)."""
    blocks = _ANSWER.findall(response)
    if blocks:
        return blocks[-1].strip()
    code = extract_code(response)
    return (code if code is not None else response).strip()


def _parse_module(text: str) -> ast.Module | None:
    if len(text) > MAX_ANSWER_CHARS:
        return None
    try:
        return ast.parse(text, mode="exec")
    except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError):
        return None


def _last_eq_assert(text: str) -> tuple[str, ast.Compare] | None:
    """(source, the Compare node) of the last `assert a == b` in `text` (rule 2)."""
    candidates = [text]
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.lstrip().startswith("assert")]
    if starts:
        last = starts[-1]
        candidates += [lines[last].strip(), "\n".join(x.strip() for x in lines[last:])]
    for source in candidates:
        tree = _parse_module(source)
        if tree is None:
            continue
        found = None
        for node in ast.walk(tree):
            if (isinstance(node, ast.Assert) and isinstance(node.test, ast.Compare) and len(node.test.ops) == 1
                    and isinstance(node.test.ops[0], ast.Eq)):
                if found is None or (node.lineno, node.col_offset) > (found.lineno, found.col_offset):
                    found = node
        if found is not None:
            return source, found.test
    return None


def predicted_output_text(response: str) -> str:
    """The text of the predicted value for output / test-output prediction (may not parse)."""
    block = answer_block(response)
    found = _last_eq_assert(block)
    if found is not None:
        source, compare = found
        segment = ast.get_source_segment(source, compare.comparators[0])
        return segment if segment is not None else ""
    return block


_BOX = "\\boxed{"


def _box_end(text: str, start: int, quotes: bool) -> int | None:
    """Index of the "}" closing the box whose content starts at `start`, or None."""
    depth, i, n = 1, start, len(text)
    while i < n:
        ch = text[i]
        if quotes and ch in "'\"":
            close = i + 1
            while close < n and text[close] != ch and text[close] != "\n":
                close += 2 if text[close] == "\\" else 1
            if close >= n or text[close] != ch:
                return None  # an unclosed quote (an apostrophe in prose): count braces without quotes
            i = close + 1
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return None


def boxed_text(response: str) -> str | None:
    """The content of the last balanced ``\\boxed{...}`` in `response`, or None."""
    start = response.rfind(_BOX)
    while start >= 0:
        begin = start + len(_BOX)
        end = _box_end(response, begin, quotes=True)
        if end is None:
            end = _box_end(response, begin, quotes=False)
        if end is not None:
            return response[begin:end].strip()
        start = response.rfind(_BOX, 0, start)
    return None


def predicted_boxed_text(response: str) -> str | None:
    """The predicted value's text from a boxed answer (rules 2-3 inside the box), or None."""
    box = boxed_text(response)
    if box is None:
        return None
    found = _last_eq_assert(box) or _last_eq_assert(f"assert {box}")  # `f(x) == v` without the assert
    if found is not None:
        source, compare = found
        segment = ast.get_source_segment(source, compare.comparators[0])
        return segment if segment is not None else ""
    if box.startswith("`") and box.endswith("`") and len(box) > 1:
        box = box.strip("`").strip()
    return box


class AnswerError(ValueError):
    """The response holds no usable answer; the message says why (stored with the result)."""


def _literal(source: str, node: ast.AST) -> Any:
    segment = ast.get_source_segment(source, node)
    ok, value = parse_prediction(segment) if segment is not None else (False, None)
    if not ok:
        raise AnswerError(f"not a literal: {segment!r:.80}")
    return value


def _call_arguments(source: str, call: ast.Call, fn_name: str) -> tuple[list, dict]:
    if not (isinstance(call.func, ast.Name) and call.func.id == fn_name):
        raise AnswerError(f"the assertion does not call {fn_name}")
    args, kwargs = [], {}
    for node in call.args:
        if isinstance(node, ast.Starred):
            raise AnswerError("starred arguments are not literals")
        args.append(_literal(source, node))
    for kw in call.keywords:
        if kw.arg is None:
            raise AnswerError("**arguments are not literals")
        kwargs[kw.arg] = _literal(source, kw.value)
    return args, kwargs


def predicted_arguments(response: str, fn_name: str) -> tuple[list, dict]:
    """(positional, keyword) argument values predicted for `fn_name` (input prediction).

    Raises AnswerError when there is no answer, the call is to another function, or an argument
    is not a literal."""
    block = answer_block(response)
    found = _last_eq_assert(block)
    if found is not None:
        source, compare = found
        if not isinstance(compare.left, ast.Call):
            raise AnswerError("the left side of the assertion is not a call")
        return _call_arguments(source, compare.left, fn_name)
    tree = _parse_module(block)
    if tree is not None and len(tree.body) == 1 and isinstance(tree.body[0], ast.Expr) \
            and isinstance(tree.body[0].value, ast.Call) and isinstance(tree.body[0].value.func, ast.Name) \
            and tree.body[0].value.func.id == fn_name:
        return _call_arguments(block, tree.body[0].value, fn_name)
    ok, value = parse_prediction("(" + block + ",)") if block else (False, None)
    if not ok or type(value) is not tuple:
        raise AnswerError("no assertion, call or argument list found")
    return list(value), {}
