"""`coderl sft`: the supervised warm start (a small policy and tokenizer from the task suite).

`trainer.py` holds the examples, the loss and the training loop; `cli.py` builds the tokenizer and
the model, trains, evaluates and writes a Hugging Face directory.
"""
