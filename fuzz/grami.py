"""Fuzz what arkd does with a GRAMI file a grid user shaped: parse it, check it against the site,
translate it into a Job. Every input must end in a Job manifest or in JobRejected with one line;
anything else (another exception, a message over lines) is a crash.

    python3 -m fuzz.grami -atheris_runs=1000000      # libFuzzer flags; fuzz/run prints the figures
"""

import sys
from pathlib import Path

import atheris
import yaml

with atheris.instrument_imports(include=["arc_bridge"]):
    from arc_bridge.config import parse_config
    from arc_bridge.errors import JobRejected
    from arc_bridge.grami import parse_grami, quote
    from arc_bridge.job import job_from_grami
    from arc_bridge.translate import Caller, build_job

EXAMPLES = Path(__file__).resolve().parents[1] / "arc_bridge" / "examples"
CONFIG = parse_config(yaml.safe_load((EXAMPLES / "bridge.yaml").read_text()))
EXAMPLE = parse_grami((EXAMPLES / "job.grami").read_bytes())
CALLER = Caller(uid=20001, gid=20001, user=CONFIG.vos["alpha"].users[0])
KEYS = sorted(EXAMPLE) + ["joboption_runtime_0_1", "joboption_runtime_1", "joboption_numnodes"]


def grami_from(fdp: atheris.FuzzedDataProvider) -> bytes:
    """Half the time raw bytes; otherwise the example with some values replaced, as A-REX quotes them."""
    if fdp.ConsumeBool():
        return fdp.ConsumeBytes(fdp.remaining_bytes())
    fields = dict(EXAMPLE)
    for _ in range(fdp.ConsumeIntInRange(0, 6)):
        fields[fdp.PickValueInList(KEYS)] = fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 80))
    return "".join(f"{k}={quote(v)}\n" for k, v in fields.items()).encode()


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    try:
        job = job_from_grami(parse_grami(grami_from(fdp)), CONFIG)
        manifest = build_job(job, CALLER, CONFIG, "echo fuzz\n")
    except JobRejected as e:
        message = str(e)
        if not message or "\n" in message:
            raise AssertionError(f"a refusal a user would read is not one line: {message!r}") from None
        return
    assert manifest["metadata"]["namespace"] == "ark-alpha"
    assert manifest["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == CALLER.uid


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
