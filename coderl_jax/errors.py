"""`UserError`: the mark of an exception caused by what the user gave (a file, a flag, a config).

`coderl` ends a command that raised one with a single line, `coderl <command>: <message>`, and exit
status 2, instead of a traceback (`coderl --traceback ...` or CODERL_TRACEBACK=1 shows the trace).
Mark a class by deriving from it beside its usual base: `class DataError(UserError, ValueError)`.
"""


class UserError(Exception):
    pass
