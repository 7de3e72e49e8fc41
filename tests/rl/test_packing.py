import numpy as np
import pytest

from coderl_jax.data.responses import extract_code
from coderl_jax.rl.packing import pack_rollouts


@pytest.mark.parametrize("response,expected", [
    ("Here:\n```python\nx = 1\n```\nand better:\n```python\nx = 2\nprint(x)\n```\n", "x = 2\nprint(x)"),
    ("```\nprint(3)\n```", "print(3)"),
    ("```py\nprint(4)\n```", "print(4)"),
    ("reasoning...\n```python\nprint(5)\n", "print(5)"),  # unclosed final fence (cut by max tokens)
    ("no code at all", None),
    ("```python\n\n```", None),
])
def test_extract_code_takes_the_last_block(response, expected):
    assert extract_code(response) == expected


def test_pack_rollouts_aligns_predicting_positions():
    batch = pack_rollouts([[5, 6, 7], [8]], [[1, 2], [3, 4, 9]], length=8, pad_id=0,
                          sampler_logprobs=[[-0.1, -0.2], [-0.3, -0.4, -0.5]], advantages=np.array([1.0, -1.0]))
    # prompts left-padded to 3 columns; responses start at column 3
    np.testing.assert_array_equal(batch["tokens"][0], [5, 6, 7, 1, 2, 0, 0, 0])
    np.testing.assert_array_equal(batch["tokens"][1], [0, 0, 8, 3, 4, 9, 0, 0])
    np.testing.assert_array_equal(batch["attn_mask"][1], [0, 0, 1, 1, 1, 1, 0, 0])
    np.testing.assert_array_equal(batch["positions"][1][2:6], [0, 1, 2, 3])
    # entry t trains token t+1: response tokens at columns 3.. are trained at 2..
    np.testing.assert_array_equal(np.nonzero(batch["loss_mask"][0])[0], [2, 3])
    np.testing.assert_array_equal(np.nonzero(batch["loss_mask"][1])[0], [2, 3, 4])
    for i, row in enumerate(batch["loss_mask"]):
        targets = batch["tokens"][i][1:][row[:-1]]
        assert list(targets) == [[1, 2], [3, 4, 9]][i]
    np.testing.assert_allclose(batch["sampler_logprobs"][1][2:5], [-0.3, -0.4, -0.5])
    assert set(batch["advantages"][0][batch["loss_mask"][0]]) == {1.0}
    assert batch["advantages"][0][~batch["loss_mask"][0]].sum() == 0


def test_pack_rollouts_token_advantages_and_masks():
    batch = pack_rollouts([[1]], [[2, 3, 4]], length=4, pad_id=0, token_advantages=[[0.5, -1.0, 2.0]],
                          response_loss_mask=[[True, False, True]])
    np.testing.assert_allclose(batch["advantages"][0][:3], [0.5, -1.0, 2.0])
    np.testing.assert_array_equal(batch["loss_mask"][0], [1, 0, 1, 0])
    with pytest.raises(ValueError, match="row 0"):
        pack_rollouts([[1, 2]], [[3, 4, 5]], length=4, pad_id=0)
