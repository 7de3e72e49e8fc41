"""render_prompt through the tokenizer's own chat template, and raw passthrough."""

import copy

from problem_files import STDIO

from coderl_jax.data import Problem, count_prompt_tokens, render_prompt


def test_template_applied(tokenizer):
    p = Problem("a", "hi", STDIO)
    assert render_prompt(p, tokenizer) == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    assert render_prompt(p, tokenizer, add_generation_prompt=False) == "<|im_start|>user\nhi<|im_end|>\n"
    # <|im_start|> user\nhi <|im_end|> \n <|im_start|> assistant\n  (special tokens count once)
    assert count_prompt_tokens(p, tokenizer) == 1 + 7 + 1 + 1 + 1 + 10


def test_system_prompt(tokenizer):
    p = Problem("a", "hi", STDIO)
    assert render_prompt(p, tokenizer, system="S").startswith("<|im_start|>system\nS<|im_end|>\n<|im_start|>user")
    msgs = Problem("b", [{"role": "system", "content": "own"}, {"role": "user", "content": "hi"}], STDIO)
    text = render_prompt(msgs, tokenizer, system="S")
    assert "own" in text and "system\nS" not in text


def test_raw_passthrough(tokenizer):
    p = Problem("a", "def f():\n", STDIO)
    assert render_prompt(p, tokenizer, raw=True) == "def f():\n"
    assert render_prompt(p, None) == "def f():\n"
    no_template = copy.deepcopy(tokenizer)
    no_template.chat_template = None
    assert render_prompt(p, no_template, system="S") == "S\n\ndef f():\n"
    chat = Problem("b", [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}], STDIO)
    assert render_prompt(chat, None) == "S\n\nU"
