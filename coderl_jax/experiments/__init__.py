"""`coderl ablate`: GRPO vs CodeRL+ vs alignment only from one warm start, several seeds.

`ablation.py` runs the arms through the trainer (coderl_jax.train.loop) and scores them; `cli.py`
is the command line.
"""
