"""Prompts through the tokenizer's own chat template.

`render_prompt` turns a problem's prompt into the exact text the policy is conditioned on:
the tokenizer's `apply_chat_template` (with the generation prompt appended) when it has a
template, the raw text otherwise (or when `raw=True`, e.g. for base models or HumanEval-style
completion prompts). Raw rendering of chat messages joins their contents with blank lines.
"""

from __future__ import annotations

from typing import Any

from coderl_jax.data.records import Problem


def prompt_messages(problem: Problem | str | list, *, system: str | None = None) -> list[dict[str, str]]:
    """The prompt as chat messages; a string becomes one user message. `system` is prepended
    unless the messages already start with a system message."""
    prompt = problem.prompt if isinstance(problem, Problem) else problem
    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else [dict(m) for m in prompt]
    if system is not None and not (messages and messages[0]["role"] == "system"):
        messages.insert(0, {"role": "system", "content": system})
    return messages


def has_chat_template(tokenizer: Any) -> bool:
    return tokenizer is not None and bool(getattr(tokenizer, "chat_template", None))


def render_prompt(problem: Problem | str | list, tokenizer: Any = None, *, system: str | None = None,
                  add_generation_prompt: bool = True, raw: bool = False) -> str:
    """The prompt text the model sees (not tokenized, special tokens written out)."""
    if raw or not has_chat_template(tokenizer):
        prompt = problem.prompt if isinstance(problem, Problem) else problem
        if isinstance(prompt, str):
            return prompt if system is None else f"{system}\n\n{prompt}"
        return "\n\n".join(m["content"] for m in prompt_messages(prompt, system=system))
    text = tokenizer.apply_chat_template(prompt_messages(problem, system=system), tokenize=False,
                                         add_generation_prompt=add_generation_prompt)
    if not isinstance(text, str):  # some tokenizers return a list for batched input
        raise TypeError(f"apply_chat_template returned {type(text).__name__}, expected str")
    return text


def count_prompt_tokens(problem: Problem | str | list, tokenizer: Any, *, system: str | None = None,
                        raw: bool = False) -> int:
    """Number of tokens of the rendered prompt (special tokens in the template count once each)."""
    text = render_prompt(problem, tokenizer, system=system, raw=raw)
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])
