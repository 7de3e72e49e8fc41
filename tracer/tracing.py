"""Variable tracer: run a program in this process and record the final value of every variable.

``trace_program`` is what the sandbox child runs (the supervisor enforces time and
memory limits from outside and captures fd 1; this module does no timeouts).
It uses ``sys.settrace`` (Python 3.11 has no ``sys.monitoring``) with local trace
functions only in frames of the user's code, so library code runs untraced.

What is recorded:

- module-level names (``x``), class-body names (``Solution.MOD``) and function
  locals qualified by the function's qualname without ``<locals>``
  (``main.count``, ``Solution.twoSum.seen``, ``outer.inner.x``);
- only names the user's code assigns (a ``Name`` store, a parameter, a ``for``
  / ``with`` / ``except ... as`` / walrus / ``match`` target; an ``import`` is
  not an assignment), never dunder names, modules, functions or classes;
- for functions, the locals of the *last completed* call (snapshot at every
  ``return`` event, normal or by exception; for recursion that is the outermost
  call); module globals at module end (or at an uncaught exception);
- the value is the one at snapshot time, serialized then (later mutation does
  not change it); ``line`` is the last line that assigned the name (found from
  a static per-line table of assignments, flushed when the line completes);
  ``order`` ranks the variables by that last assignment (0 = earliest).

Comprehension, generator-expression and lambda scopes are not traced (their
variables are temporaries; a walrus inside one assigns the enclosing scope).
"""

from __future__ import annotations

import ast
import builtins
import dis
import io
import itertools
import sys
import types
from typing import Any, Iterable

from tracer.values import Typed, render, serialize

__all__ = ["trace_program", "run_program_plain", "USER_FILENAME"]

USER_FILENAME = "<program>"
_MAX_MESSAGE_CHARS = 2000
# Values inside per-line events are cut harder than final values: a hot loop over a big list would
# otherwise serialize the whole list on every line. Change detection sees only this cut form.
EVENT_SERIALIZE_LIMITS = {"max_depth": 8, "max_items": 50, "max_str": 200, "max_nodes": 500}
_GEN_FLAGS = 0x20 | 0x80 | 0x200  # CO_GENERATOR | CO_COROUTINE | CO_ASYNC_GENERATOR
_YIELD_VALUE = dis.opmap["YIELD_VALUE"]
_IMMUTABLE_SCALARS = frozenset((int, float, bool, str, bytes, complex, type(None)))
_EXCLUDED_TYPES = (types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.MethodType,
                   types.BuiltinMethodType, types.CodeType, types.FrameType, types.TracebackType)
_MISSING = object()
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


# ----------------------------------------------------------------------------- static analysis
class _Scope:
    """What the source says about one function / class / module body."""

    __slots__ = ("qualname", "def_line", "params", "stores", "global_stores", "mutations", "for_lines", "global_names",
                 "raw", "first_resume", "flush_lines")

    def __init__(self, def_line: int, params: tuple[str, ...] = ()):
        self.qualname = ""
        self.def_line = def_line
        self.params = params
        self.stores: dict[int, tuple[str, ...]] = {}  # line -> names bound in this scope on that line
        self.global_stores: dict[int, tuple[str, ...]] = {}  # line -> module names bound (``global x``)
        self.mutations: dict[int, tuple[str, ...]] = {}  # line -> names possibly mutated in place
        self.for_lines: set[int] = set()  # lines of ``for`` headers (revisited once more when the loop ends)
        self.global_names: set[str] = set()
        self.raw: list[tuple[str, int, str]] = []  # (kind, line, name), resolved after the walk
        self.first_resume = -1  # generators: bytecode offset of the first RESUME (= a fresh start)
        self.flush_lines: frozenset[int] = frozenset()  # lines with any assignment


def _params(args: ast.arguments) -> tuple[str, ...]:
    names = [a.arg for a in args.posonlyargs + args.args]
    if args.vararg:
        names.append(args.vararg.arg)
    names += [a.arg for a in args.kwonlyargs]
    if args.kwarg:
        names.append(args.kwarg.arg)
    return tuple(names)


def _base_name(node: ast.AST) -> str | None:
    while isinstance(node, (ast.Subscript, ast.Attribute)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _analyze(tree: ast.Module) -> tuple[_Scope, dict[tuple[str, int], _Scope]]:
    """Per-scope tables of assignments, keyed like code objects: (co_name, co_firstlineno).

    Iterative, so arbitrarily deep expressions that compiled fine cannot overflow the stack.
    """
    module = _Scope(def_line=1)
    scopes: dict[tuple[str, int], _Scope] = {}
    nonlocal_by_scope: dict[int, set[str]] = {}
    # stack items: (node, scope that owns bindings, is the node inside a comprehension / lambda)
    stack: list[tuple[ast.AST, _Scope, bool]] = [(tree, module, False)]
    while stack:
        node, scope, hidden = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            is_class = isinstance(node, ast.ClassDef)
            inner = _Scope(node.lineno, () if is_class else _params(node.args))
            scopes[(node.name, first)] = inner
            outer_parts = node.decorator_list + ([*node.bases, *node.keywords] if is_class else
                                                 [*node.args.defaults, *filter(None, node.args.kw_defaults)])
            stack.extend((x, scope, hidden) for x in outer_parts)
            stack.extend((x, inner, False) for x in node.body)
            continue
        if isinstance(node, ast.Lambda):
            stack.extend((x, scope, hidden) for x in [*node.args.defaults, *filter(None, node.args.kw_defaults)])
            stack.append((node.body, scope, True))
            continue
        if isinstance(node, _COMPREHENSIONS):
            first_iter = node.generators[0].iter
            stack.append((first_iter, scope, hidden))
            rest = [c for c in ast.iter_child_nodes(node) if c is not node.generators[0]]
            rest += [c for c in ast.iter_child_nodes(node.generators[0]) if c is not first_iter]
            stack.extend((x, scope, True) for x in rest)
            continue
        line = getattr(node, "lineno", None)
        if isinstance(node, (ast.For, ast.AsyncFor)) and not hidden:
            scope.for_lines.add(node.target.lineno)
        if isinstance(node, ast.Global):
            scope.global_names.update(node.names)
        elif isinstance(node, ast.Nonlocal):
            nonlocal_by_scope.setdefault(id(scope), set()).update(node.names)
        elif isinstance(node, ast.NamedExpr) and isinstance(node.target, ast.Name):
            scope.raw.append(("store", line, node.target.id))  # walrus binds the enclosing scope
            stack.append((node.value, scope, hidden))
            continue
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store) and not hidden:
            scope.raw.append(("store", line, node.id))
        elif isinstance(node, ast.ExceptHandler) and node.name and not hidden:
            scope.raw.append(("store", line, node.name))
        elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name and not hidden:
            scope.raw.append(("store", line, node.name))
        elif isinstance(node, ast.MatchMapping) and node.rest and not hidden:
            scope.raw.append(("store", line, node.rest))
        elif isinstance(node, (ast.Subscript, ast.Attribute)) and isinstance(node.ctx, (ast.Store, ast.Del)):
            name = _base_name(node)
            if name:
                scope.raw.append(("mutate", line, name))
        elif isinstance(node, ast.Call):
            called = [_base_name(node.func.value)] if isinstance(node.func, ast.Attribute) else []
            called += [a.id for a in node.args if isinstance(a, ast.Name)]
            scope.raw.extend(("mutate", line, name) for name in called if name)
        stack.extend((child, scope, hidden) for child in ast.iter_child_nodes(node))

    for scope in [module, *scopes.values()]:
        skip = nonlocal_by_scope.get(id(scope), set())
        tables: dict[str, dict[int, list[str]]] = {"store": {}, "global": {}, "mutate": {}}
        for kind, line, name in scope.raw:
            if name in skip:
                continue
            if kind == "store" and scope is not module and name in scope.global_names:
                kind = "global"
            names = tables[kind].setdefault(line, [])
            if name not in names:
                names.append(name)
        scope.stores = {k: tuple(v) for k, v in tables["store"].items()}
        scope.global_stores = {k: tuple(v) for k, v in tables["global"].items()}
        scope.mutations = {k: tuple(v) for k, v in tables["mutate"].items()}
        scope.flush_lines = frozenset(scope.stores) | frozenset(scope.global_stores)
        scope.raw = []
    return module, scopes


def _map_code_objects(code: types.CodeType, module: _Scope, scopes: dict[tuple[str, int], _Scope]) -> dict:
    """id(code object) -> _Scope for the module and every def / class body in it. Keyed by id because
    hashing a code object rehashes its bytecode and constants on every lookup; ``code`` (alive for
    the whole run) holds every nested code object, so the ids stay valid."""
    module.qualname = ""
    out = {id(code): module}
    stack = [code]
    while stack:
        for const in stack.pop().co_consts:
            if isinstance(const, types.CodeType):
                scope = scopes.get((const.co_name, const.co_firstlineno))
                if scope is not None:
                    scope.qualname = const.co_qualname.replace(".<locals>", "")
                    if const.co_flags & _GEN_FLAGS:
                        scope.first_resume = next(i.offset for i in dis.get_instructions(const) if i.opname == "RESUME")
                    out[id(const)] = scope
                stack.append(const)
    return out


# ----------------------------------------------------------------------------- runtime
def _excluded(name: str, value: object) -> bool:
    if name.startswith("__") and name.endswith("__"):
        return True
    tp = type(value)
    return tp in _EXCLUDED_TYPES or issubclass(tp, type)  # issubclass on real types runs no user code


class _FrameState:
    __slots__ = ("defs", "prev_line", "exc_pending", "last_typed", "loop_values")

    def __init__(self) -> None:
        self.defs: dict[str, tuple[int, int]] = {}  # name -> (line, order) of its last assignment
        self.prev_line: int | None = None  # the line now running (its assignments count once it completes)
        self.exc_pending = False  # an exception was raised on prev_line: it did not complete
        self.last_typed: dict[str, Typed] | None = None  # per-line mode: value at the last event
        self.loop_values: dict[str, object] | None = None  # for-loop targets: object bound at their last definition


class _Tracer:
    def __init__(self, module_scope: _Scope, code_scopes: dict, targets: set[str] | None, per_line: bool,
                 max_events: int, serialize_kwargs: dict):
        self.module_scope = module_scope
        self.code_scopes = code_scopes
        self.targets = targets
        self.per_line = per_line
        self.max_events = max_events
        self.skw = serialize_kwargs
        self.counter = itertools.count()
        self.module_defs: dict[str, tuple[int, int]] = {}
        # qualname prefix -> {name: (raw value or typed, is_typed, line, order)} for the last completed call
        self.results: dict[str, dict[str, tuple[Any, bool, int, int]]] = {}
        self.gen_states: dict[int, _FrameState] = {}  # id(generator frame) -> state kept across resumes
        self.live: dict[types.FrameType, tuple[_Scope, _FrameState]] = {}  # frames running now
        self.events: list[dict] = []
        self.events_truncated = False
        self.hits: dict[tuple[str, int], int] = {}
        self.module_done = False
        self.snapshot_errors = 0
        self.local_trace = self._local_trace  # one bound method object, returned for every frame

    def snapshot_unwound(self, exc: BaseException) -> None:
        """Tracing stopped (the program called sys.settrace, or the trace function hit the recursion
        limit) and then an exception ended the program: take the 'return' snapshots the unwinding
        would have given, from the traceback's frames; the outermost call of each function wins."""
        tb = BaseException.__dict__["__traceback__"].__get__(exc)
        done = set()
        while tb is not None:
            entry = self.live.get(tb.tb_frame)
            if entry is not None and entry[0].qualname not in done and tb.tb_frame.f_code.co_name != "<module>":
                scope, state = entry
                done.add(scope.qualname)
                self.snapshot(scope.qualname, tb.tb_frame.f_locals, state.defs)
            tb = tb.tb_next

    def add_unflushed_module_stores(self, module: _Scope) -> None:
        """After tracing stopped early: module names assigned by lines we never saw complete get
        their last static assignment line (source order), ranked after everything recorded."""
        last_line: dict[str, int] = {}
        for line in sorted(module.stores):
            for name in module.stores[line]:
                last_line[name] = line
        for name, line in sorted(last_line.items(), key=lambda item: item[1]):
            if name not in self.module_defs:
                self.module_defs[name] = (line, next(self.counter))

    def snapshot(self, prefix: str, namespace: dict, defs: dict[str, tuple[int, int]]) -> None:
        """Record the recorded names of one scope as the last completed call of ``prefix``."""
        out = {}
        targets, skw = self.targets, self.skw
        for name, (line, order) in defs.items():
            value = namespace.get(name, _MISSING)
            if value is _MISSING or (targets is not None and (f"{prefix}.{name}" if prefix else name) not in targets):
                continue
            if type(value) in _IMMUTABLE_SCALARS:  # immutable: serialized after the run (cheap for hot calls)
                if not (name[:2] == "__" and name[-2:] == "__"):
                    out[name] = (value, False, line, order)
            elif not _excluded(name, value):
                out[name] = (serialize(value, **skw), True, line, order)
        self.results[prefix] = out

    def global_trace(self, frame: types.FrameType, event: str, arg: object):
        """The 'call' hook: the local trace function for frames of the user's code, None elsewhere."""
        scope = self.code_scopes.get(id(frame.f_code))
        if scope is None:
            return None
        if scope.first_resume >= 0:  # generator: keep its state across resumes
            state = None if frame.f_lasti == scope.first_resume else self.gen_states.get(id(frame))
            if state is None:
                state = self.gen_states[id(frame)] = _FrameState()
        else:
            state = _FrameState()
        if scope is self.module_scope:
            state.defs = self.module_defs
        elif not state.defs and scope.params:
            state.defs = dict.fromkeys(scope.params, (scope.def_line, next(self.counter)))
        self.live[frame] = (scope, state)
        if not (self.per_line or scope.flush_lines):
            frame.f_trace_lines = False  # nothing is assigned here: only 'return' matters
        return self.local_trace

    def _local_trace(self, frame: types.FrameType, event: str, arg: object):
        """One function for every traced frame (no per-call closure); state is looked up per frame."""
        try:
            scope, state = self.live[frame]
            if event == "line":
                prev = state.prev_line
                if state.exc_pending:
                    state.exc_pending = False
                elif prev in scope.flush_lines or (self.per_line and prev is not None):
                    self._flush(frame, prev, scope, state)
                state.prev_line = line = frame.f_lineno
                if self.per_line:
                    key = (scope.qualname, line)
                    self.hits[key] = self.hits.get(key, 0) + 1
            elif event == "return":
                raising, prev = state.exc_pending, state.prev_line
                if not raising and (prev in scope.flush_lines or (self.per_line and prev is not None)):
                    self._flush(frame, prev, scope, state)
                state.prev_line, state.exc_pending = None, False
                del self.live[frame]
                if scope.first_resume >= 0 and (raising or frame.f_code.co_code[frame.f_lasti] != _YIELD_VALUE):
                    self.gen_states.pop(id(frame), None)  # finished, not suspended
                if scope is self.module_scope:
                    self.snapshot("", frame.f_globals, state.defs)
                    self.module_done = True
                else:
                    self.snapshot(scope.qualname, frame.f_locals, state.defs)
            elif event == "exception":
                state.exc_pending = True
        except Exception:  # never let a tracer failure reach the program or disable tracing
            self.snapshot_errors += 1
        return self.local_trace

    def _flush(self, frame: types.FrameType, line: int, scope: _Scope, state: _FrameState) -> None:
        """The statement on ``line`` completed: its assignments are the latest definitions."""
        names = scope.stores.get(line)
        if names and line in scope.for_lines:  # the header's last visit ends the loop without binding
            namespace = frame.f_globals if scope is self.module_scope else frame.f_locals
            if state.loop_values is None:
                state.loop_values = {}
            loop_values = state.loop_values
            names = tuple(n for n in names if namespace.get(n, _MISSING) is not loop_values.get(n, _MISSING))
            loop_values.update((n, namespace.get(n)) for n in names)
        if names:
            for name in names:
                state.defs[name] = (line, next(self.counter))
        gnames = scope.global_stores.get(line)
        if gnames:
            for name in gnames:
                self.module_defs[name] = (line, next(self.counter))
        if self.per_line:
            self._line_event(frame, scope, state, line, names or (), gnames or ())

    def _line_event(self, frame: types.FrameType, scope: _Scope, state: _FrameState, line: int,
                    names: Iterable[str], gnames: Iterable[str]) -> None:
        """Per-line mode: one event for the completed ``line``. ``changed`` holds the names it
        assigned, plus names it may have mutated in place (``a[i] = x``, ``a.append(x)``, ``f(a)``)
        whose (cut) serialized form differs from the one at their previous event."""
        if len(self.events) >= self.max_events:
            self.events_truncated = True
            return
        prefix, is_module = scope.qualname, scope is self.module_scope
        namespace, module_ns = (frame.f_globals if is_module else frame.f_locals), frame.f_globals
        if state.last_typed is None:
            state.last_typed = {}
        changed: dict[str, Typed] = {}
        assigned = set(names)
        for name in [*names, *scope.mutations.get(line, ())]:
            if name in namespace and (name in state.defs or is_module and name in self.module_defs):
                value, qualified = namespace[name], (f"{prefix}.{name}" if prefix else name)
            elif name in module_ns and name in self.module_defs:  # a module-level name used in a function
                value, qualified = module_ns[name], name
            else:
                continue
            if qualified in changed or _excluded(name, value):
                continue
            typed = serialize(value, **EVENT_SERIALIZE_LIMITS)
            if name in assigned or state.last_typed.get(qualified) != typed:
                state.last_typed[qualified] = typed
                changed[qualified] = typed
        for name in gnames:
            value = module_ns.get(name, _MISSING)
            if value is not _MISSING and not _excluded(name, value):
                changed[name] = serialize(value, **EVENT_SERIALIZE_LIMITS)
        self.events.append({"scope": prefix, "line": line, "hit": self.hits.get((prefix, line), 1),
                            "changed": changed})

    def variables(self) -> dict[str, dict]:
        flat = []
        for prefix, entries in self.results.items():
            for name, (value, is_typed, line, order) in entries.items():
                flat.append((order, f"{prefix}.{name}" if prefix else name, value, is_typed, line))
        flat.sort(key=lambda item: item[0])
        out = {}
        for rank, (_, qualname, value, is_typed, line) in enumerate(flat):
            typed = value if is_typed else serialize(value, **self.skw)
            out[qualname] = {"repr": render(typed), "value": typed, "line": line, "order": rank}
        return out


# ----------------------------------------------------------------------------- running
def _safe_text(text: str) -> str:
    text = text[:_MAX_MESSAGE_CHARS]
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _exception_info(exc: BaseException, filename: str) -> dict:
    """Type, message and user-code line of an exception, without calling user methods."""
    tp = type(exc)
    module = type.__dict__["__module__"].__get__(tp, type)
    qualname = type.__dict__["__qualname__"].__get__(tp, type)
    args = BaseException.__dict__["args"].__get__(exc)
    simple = all(type(a) in _IMMUTABLE_SCALARS for a in args)
    if module == "builtins" and simple:
        message = tp.__str__(exc)  # builtin __str__ on builtin args: no user code
    elif len(args) == 1 and type(args[0]) is str:
        message = args[0]
    else:
        message = render(serialize(args[0] if len(args) == 1 else args, max_items=20, max_str=500))
    line = None
    tb = BaseException.__dict__["__traceback__"].__get__(exc)
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    return {"type": qualname if type(qualname) is str else "?", "message": _safe_text(message), "line": line}


def _compile(source: str, filename: str) -> tuple[ast.Module | None, types.CodeType | None, dict | None]:
    try:
        tree = ast.parse(source, filename)
        return tree, compile(tree, filename, "exec", dont_inherit=True), None
    except SyntaxError as exc:
        return None, None, {"type": type(exc).__name__, "message": _safe_text(str(exc.msg)), "line": exc.lineno}
    except (ValueError, OverflowError, MemoryError, RecursionError) as exc:  # NUL bytes, too deep / complex
        return None, None, {"type": type(exc).__name__, "message": _safe_text(str(exc)), "line": None}


def _run(code: types.CodeType, stdin: str,
         trace) -> tuple[str, dict | None, int | None, dict, bool, BaseException | None]:
    """Execute ``code`` as ``__main__`` with ``stdin``.

    Returns (status, exception info, exit_code, globals, whether our trace function was still
    installed at the end (False when the program called ``sys.settrace`` or tracing died in a stack
    overflow), the exception object that ended the program or None)."""
    module = types.ModuleType("__main__")
    module.__dict__["__builtins__"] = builtins
    saved = (sys.stdin, sys.stdout, sys.stderr, sys.modules.get("__main__"), sys.getrecursionlimit(), sys.gettrace())
    sys.stdin = io.TextIOWrapper(io.BytesIO(stdin.encode("utf-8", "surrogateescape")), encoding="utf-8",
                                 errors="surrogateescape")
    sys.modules["__main__"] = module
    status, exception, exit_code, intact, raised = "ok", None, None, True, None
    try:
        if trace is not None:
            sys.settrace(trace)
        exec(code, module.__dict__)
    except SystemExit as exc:
        raised = exc
        exit_code = exc.code if type(exc) is SystemExit and type(exc.code) in (int, type(None)) else 1
        exit_code = 0 if exit_code is None else exit_code
        if exit_code != 0:
            status, exception = "exception", _exception_info(exc, code.co_filename)
    except BaseException as exc:  # noqa: BLE001 - everything the program raises is a result
        status, exception, raised = "exception", _exception_info(exc, code.co_filename), exc
    finally:
        intact = sys.gettrace() is trace
        sys.settrace(saved[5])  # whatever tracer (a debugger, coverage) was there before
        try:
            sys.stdout.flush()
        except Exception:  # the program may have closed or replaced it
            pass
        sys.stdin, sys.stdout, sys.stderr = saved[:3]
        if saved[3] is not None:
            sys.modules["__main__"] = saved[3]
        sys.setrecursionlimit(saved[4])
    return status, exception, exit_code, module.__dict__, intact, raised


def _empty_result(status: str) -> dict:
    return {"status": status, "variables": {}, "exception": None, "exit_code": None, "events": [],
            "events_truncated": False, "tracer_disabled": False, "tracer_errors": 0}


def trace_program(source: str, stdin: str = "", *, targets: Iterable[str] | None = None, per_line: bool = False,
                  max_events: int = 10_000, serialize_kwargs: dict | None = None,
                  filename: str = USER_FILENAME) -> dict:
    """Run ``source`` as ``__main__`` in this process under the variable tracer.

    Returns ``{"status": "ok" | "exception" | "syntax_error", "variables": {qualname: {"repr",
    "value", "line", "order"}}, "exception": None | {"type", "message", "line"}, "exit_code":
    int | None, "events": [...], "events_truncated": bool, "tracer_disabled": bool,
    "tracer_errors": int}`` (docs/tracer-values.md). ``exit_code`` is None unless the program raised
    SystemExit: code 0 / None is status "ok" with ``exit_code`` 0, any other code is status
    "exception" with type ``SystemExit`` (a non-int code counts as 1, as Python's exit status does).
    """
    tree, code, error = _compile(source, filename)
    if code is None:
        result = _empty_result("syntax_error")
        result["exception"] = error
        return result
    module_scope, scopes = _analyze(tree)
    code_scopes = _map_code_objects(code, module_scope, scopes)
    tracer = _Tracer(module_scope, code_scopes, set(targets) if targets is not None else None, per_line, max_events,
                     dict(serialize_kwargs or {}))
    status, exception, exit_code, namespace, intact, raised = _run(code, stdin, tracer.global_trace)
    if not intact and raised is not None:
        tracer.snapshot_unwound(raised)
    if not tracer.module_done:  # tracing was switched off before module end: take the globals now
        tracer.add_unflushed_module_stores(module_scope)
        tracer.snapshot("", namespace, tracer.module_defs)
    result = _empty_result(status)
    result.update(variables=tracer.variables(), exception=exception, exit_code=exit_code,
                  tracer_disabled=not intact, tracer_errors=tracer.snapshot_errors)
    if per_line:
        result.update(events=tracer.events, events_truncated=tracer.events_truncated)
    return result


def run_program_plain(source: str, stdin: str = "", *, filename: str = USER_FILENAME) -> dict:
    """The same run without tracing (baseline for overhead): {"status", "exception", "exit_code"}."""
    tree, code, error = _compile(source, filename)
    if code is None:
        return {"status": "syntax_error", "exception": error, "exit_code": None}
    status, exception, exit_code, _, _, _ = _run(code, stdin, None)
    return {"status": status, "exception": exception, "exit_code": exit_code}
