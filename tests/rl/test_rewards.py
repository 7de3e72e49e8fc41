"""The registered code rewards, scored through the real sandbox on a problem with four stdio tests."""

import numpy as np

from coderl_jax.data.records import Problem
from coderl_jax.rl.rewards import get_reward

# keep the numbers greater than 2, four stdio cases
PROBLEM = Problem(id="gt2", prompt="keep the numbers greater than 2",
                  tests={"style": "stdio", "inputs": ["1 2 3\n", "5 6\n", "7 3\n", "2 9\n"],
                         "outputs": ["[3]\n", "[5, 6]\n", "[7, 3]\n", "[9]\n"]})


def _response(keep: str) -> str:
    return ("```python\nnums = list(map(int, input().split()))\n"
            f"print([x for x in nums if {keep}])\n```")


def test_test_fraction_grades_and_unit_tests_do_not(pool):
    responses = [_response("x > 2"), _response("x > 2 and x != 5"), _response("x > 1"), _response("x > 8"),
                 "no code here", "```python\nprint(\n```"]
    frac, info = get_reward("test_fraction")(pool, [PROBLEM] * len(responses), responses, timeout_s=5.0)
    # x != 5 fails "5 6" only; x > 1 fails the two cases holding a 2; x > 8 passes "2 9" only
    np.testing.assert_allclose(frac, [1.0, 0.75, 0.5, 0.25, 0.0, 0.0])
    assert info["passed"] == [True, False, False, False, False, False]
    assert info["status"][0] == "passed" and info["status"][4] == "no_code" and info["status"][5] == "syntax_error"
    binary, binfo = get_reward("unit_tests")(pool, [PROBLEM] * len(responses), responses, timeout_s=5.0)
    np.testing.assert_array_equal(binary, [1.0, 0, 0, 0, 0, 0])
    assert "passed" not in binfo
