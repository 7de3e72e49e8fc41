"""Small files in each benchmark's format, written by the tests (the problems are made up here)."""

from __future__ import annotations

import json
from pathlib import Path

MBPP_ROWS = [  # original MBPP layout
    {"task_id": 901, "text": "Write a function to return the larger of two numbers.",
     "code": "def larger(a, b):\r\n  return a if a > b else b", "test_setup_code": "",
     "test_list": ["assert larger(1, 2) == 2", "assert larger(5, 3) == 5", "assert larger(-1, -1) == -1"],
     "challenge_test_list": []},
    {"task_id": 902, "text": "Write a function to count the vowels in a string.",
     "code": "def count_vowels(s):\n    return sum(ch in 'aeiou' for ch in s)\n", "test_setup_code": "",
     "test_list": ["assert count_vowels('banana') == 3", "assert count_vowels('xyz') == 0"],
     "challenge_test_list": []},
]
MBPP_SANITIZED_ROWS = [  # sanitized MBPP layout: prompt + test_imports
    {"source_file": "made-up", "task_id": 903, "prompt": "Write a function to compute the hypotenuse.",
     "code": "import math\ndef hyp(a, b):\n    return math.sqrt(a * a + b * b)\n",
     "test_imports": ["import math"], "test_list": ["assert math.isclose(hyp(3, 4), 5.0)"]},
]

LEETCODE_ROWS = [  # PRIME's leetcode-test.json (DeepSeek-Coder's LeetCode contest layout)
    {"task_id": "weekly-contest-900-add-two", "url": "https://example.invalid", "title": "add-two",
     "meta": {"questionId": "9001", "difficulty": "Easy", "title": "Add Two"},
     "prompt": '"""\nReturn a + b.\n"""\nclass Solution:\n    def addTwo(self, a: int, b: int) -> int:\n        ',
     "prompt_sft": "Return a + b.\n\nPlease complete the code below:\n```python\nclass Solution:\n"
                   "    def addTwo(self, a: int, b: int) -> int:\n        \n```",
     "test": "\nmy_solution = Solution()\n\ntest_input = { \"a\": 1, \"b\": 2 }\n"
             "assert my_solution.addTwo(**test_input) == 3\n\ntest_input = { \"a\": -4, \"b\": 4 }\n"
             "assert my_solution.addTwo(**test_input) == 0\n",
     "canonical_solution": "class Solution:\n    def addTwo(self, a: int, b: int) -> int:\n        return a + b\n",
     "start_time": 1700000000},
    {"task_id": "weekly-contest-900-max-heap", "meta": {"difficulty": "Medium"},
     "prompt": '"""\nReturn the k largest values, largest first.\n"""\nclass Solution:\n'
               "    def kLargest(self, nums: List[int], k: int) -> List[int]:\n        ",
     "prompt_sft": "Return the k largest values, largest first.\n\n```python\nclass Solution:\n"
                   "    def kLargest(self, nums: List[int], k: int) -> List[int]:\n        \n```",
     "test": "\nmy_solution = Solution()\nassert my_solution.kLargest(*[[3, 1, 4, 1, 5], 2]) == [5, 4]\n",
     # needs typing's List and heapq's nlargest, as the import header provides
     "canonical_solution": "class Solution:\n    def kLargest(self, nums: List[int], k: int) -> List[int]:\n"
                           "        return nlargest(k, nums)\n"},
]

LCB_CODEGEN_ROWS = [
    {"question_title": "Pair Sum", "question_content": "Return the number of pairs i < j with nums[i] + nums[j] "
                                                      "< target.",
     "platform": "leetcode", "question_id": "9100", "contest_id": "weekly-contest-900",
     "contest_date": "2024-03-02T00:00:00", "starter_code": "class Solution:\n    def countPairs(self, nums: "
                                                            "List[int], target: int) -> int:\n        ",
     "difficulty": "easy",
     "public_test_cases": json.dumps([{"input": "[1, 2, 3]\n4", "output": "1", "testtype": "functional"}]),
     "private_test_cases": json.dumps([{"input": "[0, 0]\n1", "output": "1", "testtype": "functional"}]),
     "metadata": json.dumps({"func_name": "countPairs"})},
    {"question_title": "Sum Line", "question_content": "Read integers on one line and print their sum.",
     "platform": "atcoder", "question_id": "abc900_a", "contest_id": "abc900", "contest_date": "2023-04-01T00:00:00",
     "starter_code": "", "difficulty": "easy",
     "public_test_cases": json.dumps([{"input": "1 2 3\n", "output": "6\n", "testtype": "stdin"}]),
     "private_test_cases": json.dumps([{"input": "10\n", "output": "10\n", "testtype": "stdin"}]),
     "metadata": "{}"},
]
LCB_CODEGEN_SOLUTIONS = {  # used by the tests as model responses
    "9100": "```python\nclass Solution:\n    def countPairs(self, nums: List[int], target: int) -> int:\n"
            "        return sum(nums[i] + nums[j] < target for i in range(len(nums)) "
            "for j in range(i + 1, len(nums)))\n```",
    "abc900_a": "Here:\n```python\nprint(sum(map(int, input().split())))\n```",
}

LCB_EXECUTION_ROWS = [
    {"question_id": "9100", "id": "sample_900", "function_name": "countPairs",
     "code": "def countPairs(nums: List[int], target: int) -> int:\n    n = len(nums)\n    return sum(nums[i] + "
             "nums[j] < target for i in range(n) for j in range(i + 1, n))",
     "input": "countPairs(nums = [1, 2, 3], target = 4)", "output": "1", "numsteps": 40,
     "problem_id": [1, 2, 3], "contest_id": "weekly-contest-900", "contest_date": "2024-03-02T00:00:00",
     "difficulty": "easy"},
    {"question_id": "9101", "id": "sample_901", "function_name": "swapCase",
     "code": "def swapCase(s: str) -> str:\n    return s.swapcase()",
     "input": "swapCase(s = 'aB')", "output": "'Ab'", "numsteps": 5, "problem_id": [4],
     "contest_id": "weekly-contest-901", "contest_date": "2024-05-04T00:00:00", "difficulty": "medium"},
]

LCB_TEST_OUTPUT_ROWS = [
    {"question_title": "Pair Sum", "question_content": "Return the number of pairs i < j with nums[i] + nums[j] "
                                                      "< target.",
     "question_id": "9100", "contest_id": "weekly-contest-900", "contest_date": "2024-03-02T00:00:00",
     "difficulty": "easy", "test": json.dumps([{"input": "[1, 2, 3]\n4", "output": "1", "testtype": "functional"}]),
     "starter_code": "class Solution:\n    def countPairs(self, nums: List[int], target: int) -> int:\n        ",
     "function_name": "countPairs", "test_id": 0},
    {"question_title": "Flags", "question_content": "Return whether every value is positive, and the values.",
     "question_id": "9102", "contest_id": "weekly-contest-902", "contest_date": "2024-06-01T00:00:00",
     "difficulty": "hard", "test": json.dumps([{"input": "[1, 2]", "output": "[true, [1, 2], null]",
                                                "testtype": "functional"}]),
     "starter_code": "class Solution:\n    def flags(self, nums: List[int]) -> list:\n        ",
     "function_name": "flags", "test_id": 3},
]

CRUXEVAL_ROWS = [
    {"code": "def f(nums):\n    out = []\n    for n in nums:\n        out.append((nums.count(n), n))\n"
             "    out.sort(reverse=True)\n    return out", "input": "[2, 1, 2]", "output": "[(2, 2), (2, 2), (1, 1)]",
     "id": "sample_0"},
    {"code": "def f(text, n):\n    return text[:n] + '|' + text[n:]", "input": "'hello', 2", "output": "'he|llo'",
     "id": "sample_1"},
    {"code": "def f(d):\n    d['k'] = len(d)\n    return d", "input": "{'a': 1}", "output": "{'a': 1, 'k': 1}",
     "id": "sample_2"},
]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write_all(root: Path) -> dict:
    return {
        "mbpp": write_jsonl(root / "mbpp.jsonl", MBPP_ROWS),
        "mbpp_sanitized": write_jsonl(root / "sanitized-mbpp.json", MBPP_SANITIZED_ROWS),
        "leetcode": write_jsonl(root / "leetcode-test.json", LEETCODE_ROWS),
        "lcb_codegen": write_jsonl(root / "lcb_codegen.jsonl", LCB_CODEGEN_ROWS),
        "lcb_execution": write_jsonl(root / "lcb_execution.jsonl", LCB_EXECUTION_ROWS),
        "lcb_test_output": write_jsonl(root / "lcb_test_output.jsonl", LCB_TEST_OUTPUT_ROWS),
        "cruxeval": write_jsonl(root / "cruxeval.jsonl", CRUXEVAL_ROWS),
    }
