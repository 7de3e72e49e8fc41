"""CodeRL+ execution-semantics alignment: the policy learns to predict the runtime state of programs
it wrote. Harvest (harvest.py) -> buffer (buffer.py) -> prompts (prompts.py) -> answers
(answers.py) -> rewards (rewards.py) -> per-value token masks (spans.py) and the teacher-forced
likelihood (likelihood.py); task.py ties them to the training loop. See docs/alignment.md."""

from coderl_jax.alignment.answers import Answer, parse_answer
from coderl_jax.alignment.buffer import AlignmentBuffer
from coderl_jax.alignment.config import AlignmentConfig
from coderl_jax.alignment.harvest import harvest
from coderl_jax.alignment.prompts import alignment_prompt, answer_line
from coderl_jax.alignment.records import AlignmentRecord
from coderl_jax.alignment.rewards import AlignmentScore, score_answer
from coderl_jax.alignment.task import AlignmentTask

__all__ = ["Answer", "AlignmentBuffer", "AlignmentConfig", "AlignmentRecord", "AlignmentScore", "AlignmentTask",
           "alignment_prompt", "answer_line", "harvest", "parse_answer", "score_answer"]
