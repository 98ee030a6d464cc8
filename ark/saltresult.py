"""What a `salt-call --out=json state.highstate` result says, in a line a site admin can act on.

A highstate result maps state keys (`MODULE_|-ID_|-NAME_|-FUNCTION`) to their outcome
({result, changes, comment, __id__, __run_num__, ...}); when rendering fails, Salt returns a
list of error messages instead, and no state runs.

An orchestrate (`salt-run --out=json state.orchestrate`) result is the same for the master's
steps (salt/orch/site.sls): each step's changes hold, per minion whose highstate changed or
failed, that highstate's result (a minion that did not answer: false).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .render import PILLAR_ERROR

# A result as salt-call returns it under "local": the states, or render errors (None: no JSON).
HighstateResult = dict[str, Any] | list[str] | None

# The comment Salt gives a state it skipped because a state it requires failed.
REQUISITE_FAILED = "One or more requisite failed"


@dataclass(frozen=True)
class Summary:
    states: int  # states that ran (0 when the render failed)
    changed: tuple[str, ...]  # keys of the states that changed something, in run order
    failed: tuple[str, ...]  # keys of the states that failed, in run order
    render_errors: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.failed and not self.render_errors


def parse(stdout: str) -> HighstateResult:
    """salt-call's JSON output, or None when it printed none (it crashed before the result)."""
    try:
        document = json.loads(stdout)
    except (TypeError, ValueError):
        return None
    if not isinstance(document, dict) or "local" not in document:
        return None
    local = document["local"]
    if isinstance(local, dict):
        return local
    if isinstance(local, list):
        return [str(line) for line in local]
    return [str(local)]


@dataclass(frozen=True)
class OrchestrateStep:
    id: str  # its ID in the orchestrate SLS
    ran: bool  # False: a step it requires failed
    ok: bool
    comment: str
    # Per minion whose highstate changed or failed: its result (None: the minion did not answer).
    minions: dict[str, HighstateResult]


def parse_orchestrate(stdout: str) -> list[OrchestrateStep] | list[str] | None:
    """salt-run's JSON: the steps in run order, or the orchestrate's render errors; None when it
    printed no JSON."""
    try:
        document = json.loads(stdout)
    except (TypeError, ValueError):
        return None
    data = document.get("data") if isinstance(document, dict) else None
    if not isinstance(data, dict) or len(data) != 1:
        return None
    (steps,) = data.values()  # keyed by the master's own minion id, ID_master
    if isinstance(steps, list):
        return [str(line) for line in steps]
    if not isinstance(steps, dict):
        return [str(steps)]
    parsed = []
    for key, step in sorted(steps.items(), key=lambda item: _run_num(item[1])):
        step = step if isinstance(step, dict) else {"result": False, "comment": str(step)}
        returned = (step.get("changes") or {}).get("ret") or {}
        minions = {str(minion): (result if isinstance(result, (dict, list)) else None)
                   for minion, result in returned.items()}
        parsed.append(OrchestrateStep(state_id(key, step), step.get("__state_ran__", True) is not False,
                                      step.get("result") is True, str(_comment(step)), minions))
    return parsed


def summarize(result: HighstateResult) -> Summary:
    if result is None:
        return Summary(0, (), (), ())
    if isinstance(result, list):
        return Summary(0, (), (), tuple(result) or ("the render failed without a message",))
    ordered = sorted(result.items(), key=lambda item: _run_num(item[1]))
    changed = tuple(key for key, state in ordered if isinstance(state, dict) and state.get("changes"))
    failed = tuple(key for key, state in ordered if not isinstance(state, dict) or state.get("result") is False)
    return Summary(len(result), changed, failed, ())


def state_id(key: str, state: Any = None) -> str:
    """The state's ID as written in the .sls file."""
    if isinstance(state, dict) and state.get("__id__"):
        return str(state["__id__"])
    parts = key.split("_|-")
    return parts[1] if len(parts) == 4 else key


def state_label(key: str, state: Any = None) -> str:
    """`ID (module.function, file.sls)`: where to look for a state, from its result."""
    parts = key.split("_|-")
    function = f"{parts[0]}.{parts[3]}" if len(parts) == 4 else ""
    sls = state.get("__sls__") if isinstance(state, dict) else None
    where = ", ".join(part for part in (function, f"{sls}.sls" if sls else "") if part)
    return f"{state_id(key, state)} ({where})" if where else state_id(key, state)


def failure(result: HighstateResult, returncode: int, stderr: str = "") -> str:
    """Why a highstate failed, in one line: the first state that failed by itself (not only
    because a state it requires did) with Salt's comment, or the render error."""
    if result is None:
        return f"salt-call exited with {returncode} without a result: {last_line(stderr) or 'no output'}"
    summary = summarize(result)
    if summary.render_errors:
        text = "\n".join(summary.render_errors)
        match = PILLAR_ERROR.search(text)
        return f"the states do not render: {one_line(match.group(0) if match else text)}"
    if not summary.failed:
        return f"salt-call exited with {returncode}, but no state failed: {last_line(stderr) or 'no output'}"
    assert isinstance(result, dict)
    causes = [key for key in summary.failed if not str(_comment(result[key])).startswith(REQUISITE_FAILED)]
    key = (causes or list(summary.failed))[0]
    more = len(summary.failed) - 1
    line = f"state {state_label(key, result[key])} failed: {one_line(_comment(result[key])) or 'no comment'}"
    return line + (f" ({more} more states failed, some because this one did)" if more else "")


def changed_labels(result: HighstateResult) -> list[str]:
    """The states of a result that changed something, as `ID (module.function, file.sls)`."""
    if not isinstance(result, dict):
        return []
    return [state_label(key, result[key]) for key in summarize(result).changed]


def one_line(text: Any, limit: int = 600) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def last_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return one_line(lines[-1]) if lines else ""


def _comment(state: Any) -> Any:
    if not isinstance(state, dict):
        return state
    comment = state.get("comment", "")
    return "\n".join(map(str, comment)) if isinstance(comment, list) else comment


def _run_num(state: Any) -> float:
    if isinstance(state, dict) and isinstance(state.get("__run_num__"), (int, float)):
        return state["__run_num__"]
    return float("inf")
