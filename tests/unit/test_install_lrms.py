import subprocess
from pathlib import Path

from arc_bridge.cli import main


def test_the_installed_client_imports_with_debians_python_and_nothing_but_what_was_installed(tmp_path: Path):
    """The LRMS scripts run as mapped grid users with /usr/bin/python3, which sees neither arkd's
    virtualenv nor this checkout: every module the client imports must be among those installed."""
    assert main(["install-lrms", "--dest", str(tmp_path)]) == 0
    probe = "import sys; sys.path.insert(0, sys.argv[1]); import arc_bridge.client as c; print(c.__file__)"
    result = subprocess.run(["/usr/bin/python3", "-I", "-S", "-c", probe, str(tmp_path / "ark")],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(tmp_path / "ark" / "arc_bridge" / "client.py")
    for script in ("submit-kubernetes-job", "scan-kubernetes-job", "cancel-kubernetes-job"):
        assert (tmp_path / script).stat().st_mode & 0o755 == 0o755
