"""arkd's behaviour: submit, cancel, record results, reconcile with A-REX, answer the infosys.

The watches' threads only queue the ARC ids of what changed; one worker settles them (see
workqueue), so a slow API server or control directory never stalls a watch. Every result is
recorded through one path (`_settle`), under one lock, so the worker (for a watch event or the
tick), a scan request and the start-up reconcile can all ask about the same job safely: whichever
comes first records it, the others find it recorded and only tidy up. Recorded means
`.lrms_done` exists or this arkd wrote it: A-REX removes the file once it has read it, while
events for the Job may still be on their way. The lock guards the control directory only; no
Kubernetes API call is made while it is held, so a slow API server never stalls recording or
other callers.

arkd believes only what it made: Jobs and pods in a VO's namespace carrying that VO's label, and
for a job Kubernetes does not know, the job's owner as A-REX recorded it in the control files'
ownership, never what those files say (see controldir).
"""

import heapq
import logging
import pwd
import threading
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

from .config import Config
from .controldir import PAST_LRMS, ControlDir, find_session, prepare_session_files, read_small
from .errors import JobRejected, NotAllowed
from .grami import parse_grami
from .imagecheck import ShellCheck
from .informer import Informer, Obj
from .job import GRID_ID, job_from_grami
from .kube import Kube
from .outcome import (LOST_CODE, PULL_FAILURES, Outcome, deleted_outcome, interrupted_outcome, job_conditions,
                      job_outcome, node_ready, walltime_due)
from .infosys import summarise
from .translate import (ANN_SESSION, ANN_STOPPED, LABEL_JOB_ID, LABEL_UID, LABEL_VO, SCRATCH, Caller, build_job, k8s_name,
                        largest_node)
from .workqueue import WorkQueue

log = logging.getLogger(__name__)

TICK_SECONDS = 2.0


def caller_from_credentials(uid: int, gid: int) -> Caller:
    """The caller as the password database knows her uid: a job runs with her primary group, not
    whatever group the connecting process happened to have (a setgid program, say)."""
    try:
        entry = pwd.getpwuid(uid)
    except KeyError:
        return Caller(uid=uid, gid=gid, user=f"#{uid}")  # no account, so no VO: never runs a job
    return Caller(uid=uid, gid=entry.pw_gid, user=entry.pw_name)


class Bridge:
    def __init__(self, config: Config, kube: Kube, shells: ShellCheck | None = None):
        self.config, self.kube = config, kube
        # Whether a job's image has /bin/sh, asked at submit; None: found out when the pod starts.
        self.shells = shells
        self.controldir = ControlDir(config.controldir)
        self.lock = threading.Lock()
        self.recorded: set[str] = set()  # ARC ids recorded whose Job has not gone yet
        # ARC ids whose end only time can decide: an image pull failing within its grace period, a
        # failed Job whose pod's last status has not arrived (outcome.job_outcome). The tick looks
        # at these alone, so an idle arkd does no work per tracked job.
        self.waiting: set[str] = set()
        # (when, ARC id): running jobs by the time arkd stops them if Kubernetes has not
        # (outcome.walltime_due); `timed` holds the ids with an entry.
        self.deadlines: list[tuple[float, str]] = []
        self.timed: set[str] = set()
        # The watch threads only queue ARC ids; the worker settles them (see workqueue).
        self.queue = WorkQueue()
        # The last state of Jobs deleted, by ARC id, until handled; its own lock, which the watch
        # thread takes, guards nothing that waits on I/O.
        self.gone: dict[str, Obj] = {}
        self.gone_lock = threading.Lock()
        # Pods someone else took away from jobs arkd stopped for it (a drain), by ARC id: the pod
        # that ran the job, for the record made when the Job has gone.
        self.taken: dict[str, Obj] = {}
        self.jobs = Informer(kube, "jobs", self._on_job, _grid_id_of, self._ours)
        self.pods = Informer(kube, "pods", self._on_pod, _grid_id_of, self._ours)
        self._stop = threading.Event()
        self.now = lambda: datetime.now(timezone.utc)  # the one clock arkd's decisions read

    # --- life cycle -----------------------------------------------------------------------

    def start(self) -> None:
        threading.Thread(target=self._work, name="worker", daemon=True).start()
        self.pods.start()
        self.pods.synced.wait()
        self.jobs.start()
        self.jobs.synced.wait()
        self.reconcile()
        threading.Thread(target=self._tick, name="tick", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        self.jobs.stop()
        self.pods.stop()

    def reconcile(self) -> int:
        """Match every job A-REX still waits for against Kubernetes; report the ones that vanished.

        "Waits for" comes from the job's status file, which its owner can write: it only decides
        which jobs to look at, and a job of hers that Kubernetes does not know is reported lost to
        her alone.
        """
        lost = 0
        for grid_id in self.controldir.jobs_in_lrms():
            with self.gone_lock:
                if grid_id in self.gone:
                    continue  # deleted a moment ago: the worker records it, with its reason
            job = self._cached_job(grid_id) or self._fetch_job(grid_id)
            if job is not None:
                self._settle(job)
            elif self._local_id(grid_id):
                outcome = Outcome(LOST_CODE, "job is not known to Kubernetes any more (lost while arkd was down?)",
                                  end=self.now())
                lost += self._record_unknown(grid_id, outcome)
        return lost

    # --- requests -------------------------------------------------------------------------

    def submit(self, caller: Caller, grami: str, script: str) -> str:
        job = job_from_grami(parse_grami(grami.encode()), self.config)
        node = largest_node(self.kube.nodes(), self.config.queues[job.queue].node_selector) if job.whole_node else None
        manifest = build_job(job, caller, self.config, script, node)
        if self.controldir.state(job.grid_id) is None:
            raise JobRejected(f"job {job.grid_id} is not known to A-REX (no status in {self.controldir.root})")
        if self.controldir.owner(job.grid_id) != caller.uid:
            raise NotAllowed(f"job {job.grid_id} belongs to another user")
        self._require_shell(manifest)
        try:
            prepare_session_files(Path(job.session_dir), caller.uid, caller.gid)
        except OSError as e:
            raise JobRejected(f"session directory unusable: {e}") from None
        name = manifest["metadata"]["name"]
        if self.kube.create_job(manifest) is None:
            existing = self.kube.get_job(manifest["metadata"]["namespace"], name)
            labels = (existing or {}).get("metadata", {}).get("labels", {})
            if labels.get(LABEL_JOB_ID) != job.grid_id or labels.get(LABEL_UID) != str(caller.uid):
                raise JobRejected(f"a different Kubernetes Job named {name} exists already")
            log.info("job %s was submitted before, keeping Job %s", job.grid_id, name)
        else:
            log.info("job %s submitted as Job %s/%s for %s", job.grid_id, manifest["metadata"]["namespace"], name,
                     caller.user)
        return name

    def warm_shell_check(self) -> None:
        """Read every image the VOs may run, in the background (arkd's start), so that no first
        submit of one waits for it: for the mounts _require_shell keys its answers by, a job's
        without scratch space and with it."""
        if self.shells is None:
            return
        wanted = []
        for vo in self.config.vos.values():
            for scratch in ((), (SCRATCH,)):
                mounts = self._shell_check_mounts([*map(str, vo.mounts), *scratch])
                wanted += [(vo.image_ref(image), mounts) for image in vo.images]
        self.shells.warm(wanted)

    def _shell_check_mounts(self, mount_paths: Iterable[str]) -> list[str]:
        """What the image check keys its answer by: the session roots, standing for the job's own
        session mounts below them, and every other mount; so it is kept per image and VO mounts,
        not per job."""
        roots = [PurePosixPath(r) for r in self.config.session_roots]
        return sorted({str(root) for root in roots}
                      | {m for m in mount_paths if not any(root in PurePosixPath(m).parents for root in roots)})

    def _require_shell(self, manifest: Obj) -> None:
        """Refuse an image that has no /bin/sh, which runs ARC's job script; an image the check
        cannot read in time (registry away, image not there yet) goes on to Kubernetes."""
        if self.shells is None:
            return
        container = manifest["spec"]["template"]["spec"]["containers"][0]
        mounts = self._shell_check_mounts(m["mountPath"] for m in container.get("volumeMounts", ()))
        answer = self.shells.check(container["image"], mounts)
        if answer.present is False:
            raise JobRejected(answer.message)
        if answer.present is None:
            log.info("cannot tell at submit whether image %s has /bin/sh (%s); its pod will", answer.image,
                     answer.detail)

    def cancel(self, caller: Caller, grami: str) -> None:
        grid_id = parse_grami(grami.encode()).get("joboption_gridid", "")
        if not GRID_ID.match(grid_id):
            raise JobRejected(f"job id {grid_id[:80]!r} is not an ARC job id")
        job = self._cached_job(grid_id) or self._fetch_job(grid_id)
        if job is None:
            # Not (yet) in Kubernetes: the owner of the job's control files is the job's owner.
            if caller.uid not in (0, self.controldir.owner(grid_id)):
                raise NotAllowed(f"job {grid_id} belongs to another user")
            if self.controldir.state(grid_id) is not None:
                outcome = Outcome(LOST_CODE, "job was cancelled before it reached Kubernetes",
                                  end=self.now(), cancelled=True)
                self._record_unknown(grid_id, outcome)
            return
        if caller.uid not in (0, int(job["metadata"]["labels"].get(LABEL_UID, -1))):
            raise NotAllowed(f"job {grid_id} belongs to another user")
        log.info("cancelling job %s for %s", grid_id, caller.user)
        self.kube.cancel_job(job["metadata"]["namespace"], job["metadata"]["name"])

    def scan(self, caller: Caller) -> int:
        if caller.uid != 0:
            raise NotAllowed("only A-REX (root) may trigger a scan")
        return self.reconcile()

    def info(self, caller: Caller) -> dict[str, Any]:
        if caller.uid != 0:
            raise NotAllowed("only root (the infoprovider, site admins) may read the site summary")
        quotas = {vo.name: self.kube.get_quota(vo.namespace) for vo in self.config.vos.values()}
        summary = summarise(self.config, self.kube.nodes(), self.jobs.items(), self.pods.items(), quotas)
        # arkd itself, for admins and bench/scale: what it tracks and what it has asked of the API.
        summary["arkd"] = {"tracked_jobs": len(self.jobs.items()), "api_requests": self.kube.requests}
        return summary

    # --- recording ------------------------------------------------------------------------

    def _on_job(self, kind: str, job: Obj) -> None:
        grid_id = _grid_id_of(job)
        if grid_id is None:
            return
        if kind == "DELETED":
            with self.gone_lock:
                self.gone[grid_id] = job
        self.queue.add(grid_id)

    def _on_pod(self, kind: str, pod: Obj) -> None:
        if (grid_id := _grid_id_of(pod)) is not None:
            self.queue.add(grid_id)

    def _tick(self) -> None:
        while not self._stop.wait(TICK_SECONDS):
            self.tick()

    def tick(self) -> None:
        """Queue the jobs whose end only time decides: those waiting, and those now due."""
        now = self.now().timestamp()
        with self.lock:
            due = list(self.waiting)
            while self.deadlines and self.deadlines[0][0] <= now:
                _, grid_id = heapq.heappop(self.deadlines)
                self.timed.discard(grid_id)
                due.append(grid_id)
        for grid_id in due:
            self.queue.add(grid_id)

    def _work(self) -> None:
        while not self._stop.is_set():
            if (grid_id := self.queue.get(timeout=1.0)) is not None:
                self._handle(grid_id)

    def work(self) -> None:
        """Handle every queued job now, in this thread (tests, which deliver events by hand)."""
        while (grid_id := self.queue.get(timeout=0)) is not None:
            self._handle(grid_id)

    def _handle(self, grid_id: str) -> None:
        # One job that cannot be handled (an unwritable control file, an API error) must not
        # stall the others; it is handled again on its next event or tick.
        try:
            with self.gone_lock:
                gone = self.gone.pop(grid_id, None)
            if gone is not None:
                try:
                    self._settle_deleted(gone)
                except Exception:
                    # No event comes again for a Job that has gone: the tick brings it back.
                    with self.gone_lock:
                        self.gone.setdefault(grid_id, gone)
                    with self.lock:
                        self.waiting.add(grid_id)
                    raise
            if (job := self._cached_job(grid_id)) is not None:
                self._settle(job)
        except Exception:
            log.exception("settling job %s failed", grid_id)
        finally:
            self.queue.done(grid_id)

    def _settle(self, job: Obj) -> None:
        """Record the job if it has ended; then (1.20 has no TTL controller) delete it."""
        meta = job["metadata"]
        grid_id = meta["labels"][LABEL_JOB_ID]
        if meta.get("deletionTimestamp"):
            return  # the DELETED event settles it
        if ANN_STOPPED in meta.get("annotations", {}):
            # Stopped for a drain, and not deleted yet (the delete failed, or arkd restarted).
            self.kube.delete_job(meta["namespace"], meta["name"])
            return
        taken = self._taken_pod(grid_id)
        if taken is not None and not self._recorded(grid_id) and self._interrupted(job, taken):
            return
        with self.lock:
            if not self._recorded(grid_id):
                pod = self._pod_of(grid_id)
                outcome = job_outcome(job, pod, self.now(), self.config.image_pull_grace_seconds)
                if outcome is None:
                    if job_conditions(job) or (pod is not None and _pulling_failed(pod)):
                        self.waiting.add(grid_id)
                    else:
                        self.waiting.discard(grid_id)
                    if (due := walltime_due(job)) is not None and grid_id not in self.timed:
                        heapq.heappush(self.deadlines, (due.timestamp(), grid_id))
                        self.timed.add(grid_id)
                    return
                self._record(job, outcome)
        self.kube.delete_job(meta["namespace"], meta["name"])

    def _interrupted(self, job: Obj, pod: Obj) -> bool:
        """Stop a running job whose pod someone else takes away (outcome.interrupted_outcome); True
        if it was. The Job goes at once: 1.20's Job controller has already made a second pod.

        A node that stopped answering may never confirm its pod gone: the job is recorded now.
        Otherwise (a drain, a deleted pod) the pod is stopping: the Job carries the reason, and
        its DELETED event, once its pods are gone, records it, so A-REX never collects outputs a
        job is still writing."""
        meta = job["metadata"]
        fresh = self.kube.get_job(meta["namespace"], meta["name"])
        if fresh is None or fresh["metadata"].get("deletionTimestamp"):
            return True  # going: its DELETED event settles it
        if ANN_STOPPED in fresh["metadata"].get("annotations", {}):
            return True  # stopped already: the Job's event for that mark brings it to _settle
        node = self.kube.get_node(pod["spec"]["nodeName"])
        outcome = interrupted_outcome(fresh, pod, node, self.now())
        if outcome is None:
            return False
        if node_ready(node):
            with self.lock:
                self.taken[_grid_id_of(job) or ""] = pod
            self.kube.stop_job(meta["namespace"], meta["name"], {ANN_STOPPED: outcome.message})
            return True
        with self.lock:
            if not self._recorded(_grid_id_of(job) or ""):
                self._record(fresh, outcome)
        self.kube.delete_job(meta["namespace"], meta["name"])
        return True

    def _settle_deleted(self, job: Obj) -> None:
        grid_id = job["metadata"]["labels"][LABEL_JOB_ID]
        with self.lock:
            pod = self.taken.pop(grid_id, None) or self._pod_of(grid_id)
            # A-REX moved on (a Job that outlived a lost node, arkd restarted since): nothing to tell.
            if self._recorded(grid_id) or self.controldir.state(grid_id) in PAST_LRMS:
                self.recorded.discard(grid_id)  # its last event
                self.waiting.discard(grid_id)
                return
            self._record(job, deleted_outcome(job, pod, self.now()))

    def _record(self, job: Obj, outcome: Outcome) -> None:
        # The session path and uid are arkd's own, checked at submit and kept on the Job.
        meta = job["metadata"]
        grid_id = meta["labels"][LABEL_JOB_ID]
        session = Path(meta["annotations"][ANN_SESSION])
        self.controldir.record(grid_id, session, int(meta["labels"][LABEL_UID]), outcome)
        self.recorded.add(grid_id)
        self.waiting.discard(grid_id)
        self.timed.discard(grid_id)
        log.info("job %s ended: %s", grid_id, outcome.lrms_done())

    def _record_unknown(self, grid_id: str, outcome: Outcome) -> int:
        """Record a job Kubernetes does not know; 1 if this call recorded it."""
        owner = self.controldir.owner(grid_id)
        session = find_session(self.config.session_roots, grid_id, owner)
        with self.lock:
            if self._recorded(grid_id):
                return 0
            self.controldir.record(grid_id, session, owner or -1, outcome)
        log.info("job %s ended: %s", grid_id, outcome.lrms_done())
        return 1

    def _recorded(self, grid_id: str) -> bool:
        return grid_id in self.recorded or self.controldir.is_done(grid_id)

    # --- lookups --------------------------------------------------------------------------

    def _cached_job(self, grid_id: str) -> Obj | None:
        return next(iter(self.jobs.lookup(grid_id)), None)

    def _fetch_job(self, grid_id: str) -> Obj | None:
        name = k8s_name(grid_id)
        for vo in self.config.vos.values():
            job = self.kube.get_job(vo.namespace, name)
            if job is not None and self._ours(job) and _grid_id_of(job) == grid_id:
                return job
        return None

    def _ours(self, obj: Obj) -> bool:
        """A Job or pod arkd made: in a VO's namespace, labelled with that VO."""
        meta = obj["metadata"]
        vo = self.config.vos.get(meta.get("labels", {}).get(LABEL_VO, ""))
        return vo is not None and vo.namespace == meta.get("namespace")

    def _pod_of(self, grid_id: str) -> Obj | None:
        """The job's pod: the first, the one that ran it. (A second exists only after the first was
        taken away, and never runs the job: see translate._LAUNCHER.)"""
        pods = self.pods.lookup(grid_id)
        return min(pods, key=lambda p: p["metadata"].get("creationTimestamp", ""), default=None)

    def _taken_pod(self, grid_id: str) -> Obj | None:
        """A pod of the job that is being deleted from the node it was bound to."""
        return next((p for p in self.pods.lookup(grid_id)
                     if p["metadata"].get("deletionTimestamp") and (p.get("spec") or {}).get("nodeName")), None)

    def _local_id(self, grid_id: str) -> str | None:
        text = read_small(self.controldir.job_file(grid_id, "local"))
        if text is None:
            return None
        return next((l.split("=", 1)[1] for l in text.splitlines() if l.startswith("localid=")), None)


def _grid_id_of(obj: Obj) -> str | None:
    return obj["metadata"].get("labels", {}).get(LABEL_JOB_ID)


def _pulling_failed(pod: Obj) -> bool:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return any((s.get("state") or {}).get("waiting", {}).get("reason") in PULL_FAILURES for s in statuses)
