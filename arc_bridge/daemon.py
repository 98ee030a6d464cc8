"""arkd: the root-owned daemon between A-REX and Kubernetes, one per compute element."""

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from .config import load_config
from .errors import BridgeError, ConfigError
from .imagecheck import ShellCheck
from .kube import Kube
from .registry import Registry
from .server import SocketServer
from .service import Bridge

log = logging.getLogger("arkd")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="arkd",
        description="Run A-REX jobs as Kubernetes Jobs: serve the LRMS scripts on a Unix socket, "
        "watch the Jobs, and report every result back to A-REX's control directory.",
    )
    parser.add_argument("--config", type=Path, default=Path("/etc/ark/bridge.yaml"), help="bridge configuration (default %(default)s)")
    parser.add_argument("--verbose", "-v", action="store_true", help="log every watch event")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.verbose:
        logging.getLogger("arc_bridge").setLevel(logging.DEBUG)
    try:
        config = load_config(args.config)
    except ConfigError as e:
        print(f"arkd: {e}", file=sys.stderr)
        return 2

    shells = None
    if config.image_check is not None:
        try:
            shells = ShellCheck(Registry.from_files(config.image_check.docker_config, config.image_check.ca_file))
        except BridgeError as e:
            print(f"arkd: {e}", file=sys.stderr)
            return 2
    bridge = Bridge(config, Kube(config.kubeconfig), shells)
    log.info("listing Jobs and pods, then reconciling with %s", config.controldir)
    bridge.start()
    bridge.warm_shell_check()
    server = SocketServer(config.socket, bridge)

    def shutdown(signum: int, _frame: object) -> None:
        log.info("signal %d: stopping", signum)
        threading.Thread(target=server.shutdown).start()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    log.info("serving on %s", config.socket)
    server.serve_forever()
    bridge.stop()
    server.server_close()
    config.socket.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
