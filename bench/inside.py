"""The benchmark's timing helper, copied into the CE host and run there by Debian's python3.

Standard library only (like the LRMS client it drives), so the clock readings are taken inside the
host, next to what they time, and not blurred by the nsenter that reaches the host from outside.

  inside.py submit UID GID ARC_CONF TMPDIR LISTING TIMEOUT  (as root) runs A-REX's submit script
      as the mapped user (setpriv) once per GRAMI listed, one after the other; prints the wall
      time of each as JSON.
  inside.py create CLIENT_DIR SOCKET LISTING WORKERS TIMEOUT  (as the mapped user) submits every
      GRAMI listed to arkd's socket from WORKERS threads; prints Jobs per second.
  inside.py timed TIMEOUT ARGV...  runs ARGV once; prints its wall time in seconds.
"""

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor


def submit(uid: str, gid: str, arc_conf: str, tmpdir: str, listing: str, timeout: str) -> None:
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "ARC_CONFIG": arc_conf, "TMPDIR": tmpdir, "LANG": "C.UTF-8"}
    times = []
    for grami in open(listing).read().split():
        t0 = time.perf_counter()
        result = subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups",
                                 "/usr/share/arc/submit-kubernetes-job", "--config", arc_conf, grami],
                                capture_output=True, text=True, env=env, cwd="/", timeout=float(timeout))
        times.append(time.perf_counter() - t0)
        if result.returncode != 0:
            sys.exit(f"submit-kubernetes-job {grami} exited {result.returncode}: "
                     f"{result.stdout[-1000:]}{result.stderr[-2000:]}")
    print(json.dumps(times))


def create(client_dir: str, socket: str, listing: str, workers: str, timeout: str) -> None:
    sys.path.insert(0, client_dir)
    from arc_bridge.protocol import call

    gramis = open(listing).read().split()

    def one(path: str) -> None:
        reply = call(socket, {"op": "submit", "grami": open(path).read(), "script": "true\n"},
                     timeout=float(timeout))
        if not reply.get("ok"):
            raise SystemExit(f"arkd refused {path}: {reply}")

    t0 = time.perf_counter()
    with ThreadPoolExecutor(int(workers)) as pool:
        list(pool.map(one, gramis))
    print(len(gramis) / (time.perf_counter() - t0))


def timed(timeout: str, *argv: str) -> None:
    t0 = time.perf_counter()
    result = subprocess.run(argv, capture_output=True, text=True, timeout=float(timeout))
    elapsed = time.perf_counter() - t0
    if result.returncode != 0:
        sys.exit(f"{argv[0]} exited {result.returncode}: {result.stdout[-1000:]}{result.stderr[-2000:]}")
    print(elapsed)


if __name__ == "__main__":
    {"submit": submit, "create": create, "timed": timed}[sys.argv[1]](*sys.argv[2:])
