# An example ARK site: one host with every role (all-in-one). Copy it, change the addresses,
# the secrets and the VOs, and run `salt-call state.highstate`. Every key under `ark` is read
# only through salt/ark/map.jinja, which fills in salt/ark/defaults.yaml for anything left out
# and refuses a bad value (naming its key here) before anything changes on the host.
ark:
  # What this host is: control-plane (etcd, API server, controller-manager, scheduler),
  # worker (containerd + kubelet), registry (the VOs' image registry), ce (A-REX + arkd).
  # A site with a host per role (or several workers) gives each host its own roles, node_ip,
  # node_name and pod_cidr, and all of them the same rest; pillar/top.sls shows how.
  roles: [control-plane, worker, registry, ce]

  # This host's IPv4 address for cluster traffic: the API server, kubelet and registry listen
  # here, and pods reach the registry here. Not a loopback address (kubectl logs needs a real one).
  node_ip: 10.213.0.2

  # The site's file mirror: Kubernetes binaries (checked against salt/ark/versions.yaml) and
  # the arc_bridge wheel with its dependencies. The site needs no other download source.
  files_repo: http://10.213.0.1:8080/ark-files

  # Static /etc/hosts entries (name: IPv4 address) for names the site's DNS does not know; the
  # host's own name must resolve before A-REX installs. Empty (the default): DNS only.
  # Example: {ark-node-1: 10.213.0.2}
  hosts: {}

  # The site CA that issues every certificate (API server, kubelets, registry, A-REX host
  # certificate), as PEM text. Empty (the default) is allowed only on a host with every role,
  # which then makes its own. A site whose roles are spread over hosts gives every host the same
  # CA here (each host signs its own certificates, so each needs the key; keep the pillar file
  # root-only). Make one with:
  #   openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
  #     -subj /CN=ark-site-ca -addext basicConstraints=critical,CA:true \
  #     -addext keyUsage=critical,keyCertSign,cRLSign,digitalSignature -keyout ca.key -out ca.crt
  # and paste both files in, indented, as block scalars (cert: |, key: |).
  pki:
    ca:
      cert: ""
      key: ""

  # Debian packages, for a host with no route to a Debian mirror; both are set up before any
  # package is installed (salt/ark/apt.sls).
  apt:
    # Through an HTTP proxy to a mirror (the site's apt-cacher-ng, say), written to
    # /etc/apt/apt.conf.d/01ark-proxy. Empty (the default): no proxy, and a file left from one is
    # removed.
    proxy: ""
    # Or from the site's own package repository: `ark bundle --out DIR` puts every package the
    # roles install, with all they need, in DIR/debian/ (signed), and prints both values:
    #   repository:
    #     url: http://10.213.0.1:8080/ark-files/debian     # <files_repo>/debian
    #     key: |                                           # DIR/ark-bundle-key.asc
    #       -----BEGIN PGP PUBLIC KEY BLOCK-----
    #       ...
    #       -----END PGP PUBLIC KEY BLOCK-----
    # It becomes the host's ONLY package source: the key goes to /etc/apt/keyrings/ark-site.asc,
    # the source to /etc/apt/ark/ark-site.sources, and /etc/apt/apt.conf.d/01ark-sources points
    # apt there instead of /etc/apt/sources.list and sources.list.d/ (left as they are, unread, so
    # a host with no route out never fails `apt-get update` on them; they count again once the
    # setting is removed). A source an admin adds in sources.list.d is ignored too meanwhile. With
    # a proxy as well, apt fetches the repository through it. Empty url (the default): the host's
    # own sources.
    repository:
      url: ""
      key: ""

  kubernetes:
    # The version to install: a key of salt/ark/versions.yaml or of `checksums` below. The
    # formula follows the flags that releases removed (--port in 1.24, --container-runtime in
    # 1.27); ARK runs 1.20.2 in its tests and renders a current release (1.31) in seconds.
    version: "1.20.2"
    # sha256 of each binary in files_repo/kubernetes/<version>/, merged over versions.yaml; a
    # version without them is refused. Binaries built locally (as ARK's 1.20.2 from Debian's
    # source) are not bit-reproducible, so the site lists its own (`sha256sum kube*`):
    #   "1.20.2": {kube-apiserver: <sha256>, kube-controller-manager: <sha256>,
    #              kube-scheduler: <sha256>, kubelet: <sha256>, kubectl: <sha256>}
    checksums: {}
    # Where the API server listens and clients connect. Default: node_ip on the control-plane
    # host; worker and ce hosts without that role must be told. Port default 6443.
    apiserver:
      address: 10.213.0.2
      port: 6443
    # Service and pod address ranges; must not overlap each other or the node network. Pods get
    # addresses from their node's pod_cidr (a bridge per node, no overlay network: jobs exchange
    # files through the session directory, not the network), so each worker needs its own range.
    service_cidr: 10.215.0.0/24
    pod_cidr: 10.214.0.0/24
    # This node's Kubernetes name (default: the minion id) and labels; queues select nodes by them.
    node_name: ark-node-1
    node_labels:
      ark.nordugrid.org/queue: default
    # Fields of the kubelet's KubeletConfiguration (kubelet.config.k8s.io/v1beta1) over the
    # formula's own (salt/kubernetes/node/configured.sls). A kubelet on a shared or nested machine
    # may want, e.g., nodeStatusUpdateFrequency: 1s and low evictionHard thresholds
    # ({memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%}).
    kubelet_config: {}
    # Seconds a node may go without reporting before the control plane marks it not ready
    # (kube-controller-manager --node-monitor-grace-period). A job on a node that stopped answering
    # fails after this plus bridge:node_lost_seconds.
    node_monitor_grace_seconds: 40
    # Longest time a pod that found no room waits before the scheduler tries it again
    # (KubeSchedulerConfiguration podMaxBackoffSeconds; Kubernetes' default is 10). Jobs waiting
    # for CPUs are a batch system's normal case: with 10, a job queued behind others starts up to
    # 10 s after a CPU is free (1 + 2 + 4 + 8 + 10 ... s of back-off, measured by bench/peers).
    scheduler_backoff_seconds: 1
    # The cluster-admin kubeconfig the kubernetes formula writes on the control-plane host (and
    # there only); Salt applies the site's namespaces, RBAC, quotas and pull secrets with it.
    admin_kubeconfig: /etc/ark/admin.kubeconfig

  registry:
    # Where the registry serves TLS with the site PKI (default: node_ip on the registry host,
    # required on worker and ce hosts without that role; port 5000). VO images live under
    # <address>:<port>/vo-<VO name>/. nginx serves this address and checks the accounts; the
    # registry itself listens only on a Unix socket that nginx's workers alone may open.
    address: 10.213.0.2
    port: 5000
    # The account containerd and the VOs' pods pull with (an image pull secret in every VO
    # namespace); needed on registry, worker and ce hosts. Secret: change it.
    pull_user:
      name: ark-pull
      password: change-me-pull
    # The site's own account, which may push anywhere: the pod sandbox image ark/pause:3.2
    # that every node needs. Needed on the registry host. Secret: change it.
    admin_user:
      name: ark-admin
      password: change-me-admin
    # One pushing account per VO, for the VO's image manager; it may push under vo-<VO>/ only
    # (nginx in front of the registry enforces it). Secrets: change them.
    push_users:
      alpha:
        name: alpha-manager
        password: change-me-alpha
    # Garbage collection runs at this systemd OnCalendar time with the registry stopped.
    gc_schedule: Sun *-*-* 03:00:00
    # Where image layers are stored.
    storage: /var/lib/docker-registry
    # Serving certificate and key, issued by the site PKI (kubernetes formula) for `address`.
    tls:
      cert: /etc/ark/pki/registry.crt
      key: /etc/ark/pki/registry.key

  # One entry per VO: a namespace, a repository prefix in the registry, local accounts.
  vos:
    # The VO's name, as in authgroups and the registry prefix vo-<name>: lower-case letters, digits, -.
    alpha:
      # Kubernetes namespace of the VO's jobs (default: ark-<VO name>).
      namespace: ark-alpha
      # Local accounts A-REX maps the VO's members to, with their uids (unique site-wide,
      # never 0: A-REX does not run jobs as root).
      users:
        arkuser: 20001
      # Images jobs may use, relative to <registry>/vo-alpha/; anything else is refused at submit.
      # A job names one with (runtimeenvironment="ENV/CONTAINER" "tools:2"), see bridge:image_rte.
      images: [base:1, tools:2]
      # Image of a job that names none; must be one of images.
      default_image: base:1
      # RTEs the VO may request besides bridge:image_rte, each either
      # - an image from images: arkd runs a job that asks for the RTE in that image (A-REX gets a
      #   script of ARK's that sets nothing up), or
      # - null: one of ARC's own RTEs (/usr/share/arc/rte: ENV/PROXY, ENV/RTE, ENV/LRMS-SCRATCH,
      #   ...), which the job script runs in the VO's default image; highstate fails naming an
      #   RTE that ARC does not ship.
      # The CE has one script per RTE, so VOs that list the same RTE must all map it to an image,
      # or all to null.
      runtime_environments:
        APPS/ALPHA/TOOLS-2: tools:2
        # Copies the job's delegated proxy into its session directory; X509_USER_PROXY points to it.
        ENV/PROXY: null
      # ResourceQuota of the namespace: total CPU (cores, or m for millicores) and memory
      # (Ki/Mi/Gi/Ti) of all running jobs; optional pods (count).
      quota:
        cpu: "4"
        memory: 8Gi
      # LimitRange of the namespace: default_cpu/default_memory for containers that set none,
      # max_cpu/max_memory as the largest any container may ask for; null drops a default.
      limits:
        default_cpu: "1"
        default_memory: 512Mi
      # Grid certificate subjects of the VO's members (A-REX authgroup).
      dns:
        - /O=Grid/O=ARK Example/CN=Alice
      # The highest ARC priority (0-100) this VO's jobs are ranked with, whatever a job asks for
      # (default 100). Priority only orders pending jobs: PriorityClasses never preempt.
      max_priority: 100
      # Host directories the VO's jobs see read-only at the same path, e.g. /cvmfs or a site
      # software area (default: none). Each must exist on every worker (the pod waits for it
      # otherwise). Paths of the node's own (/etc, /proc, /run, /var/lib/kubelet, A-REX's
      # directories, ... or a parent of one) are refused, naming the entry.
      mounts: []

  # Queues as A-REX publishes them: the VOs allowed in and the nodes that run their jobs.
  queues:
    default:
      # VOs whose members may submit here.
      vos: [alpha]
      # Node labels (kubernetes:node_labels) a node needs to run this queue's jobs.
      node_selector:
        ark.nordugrid.org/queue: default
      # Longest wall time a job may ask for here (default: bridge:limits:max_walltime_seconds).
      max_walltime_seconds: 86400
      # A job requests its memory x count. Its memory limit is that times this factor (default
      # 1.0), or none with null. Kubernetes counts page cache against the limit, so a tight limit
      # kills I/O-heavy jobs a batch system would let run; without one, only a node out of memory
      # kills jobs (the kernel picks). Either way an OOM kill is reported as such. null needs the
      # queue's VOs without limits:default_memory and limits:max_memory.
      memory_limit_factor: 1.0
      # enforced (default): a job uses at most the CPUs it asked for (count). request_only: it may
      # use idle CPUs beyond them (needs the VOs without limits:default_cpu and limits:max_cpu).
      cpu_limit: enforced
      # Scratch space in MB (node-local, TMPDIR=/tmp, gone with the job) of a job that asks for
      # no disk (xRSL disk, ADL DiskSpaceRequirement); the job's own request wins, up to
      # bridge:limits:max_disk_mb. A job over it is stopped. 0 (default): no request, no bound.
      scratch_mb: 0

  # PriorityClass per ARC priority band (class: lowest ARC priority, 0-100); a job gets the class
  # with the highest bound not above its priority (ARC's default is 50), capped by its VO's
  # max_priority. The classes never preempt running jobs. Replaces the defaults.
  priority_classes:
    ark-low: 0
    ark-normal: 40
    ark-high: 80

  arex:
    # Host name in the A-REX endpoint and its certificate, and the HTTPS port.
    hostname: localhost
    port: 8443
    # Host certificate: {source: pki} issues one from the site PKI; an admin-provided one is
    # {cert: /path/hostcert.pem, key: /path/hostkey.pem}.
    host_cert:
      source: pki
    # Directory of the CAs A-REX trusts for users' certificates (e.g. the IGTF bundle in
    # /etc/grid-security/certificates). Empty (the default): the site CA only.
    x509_cert_dir: ""
    # Address the REST interface listens on (0.0.0.0: every interface).
    listen: 0.0.0.0
    # A-REX's control directory and session directory; arkd reads and writes the same paths,
    # and a job's pod mounts its session directory from the node.
    controldir: /var/spool/arc/jobstatus
    sessiondir: /var/spool/arc/sessiondir
    # Where RTE scripts live, and A-REX's scratch directory (made world-writable and sticky).
    runtimedir: /var/spool/arc/runtime
    tmpdir: /var/spool/arc/tmp
    # Seconds between A-REX's job-processing passes, and between infoprovider runs (null: ARC's
    # own period; a small value makes arcstat see state changes sooner).
    wakeupperiod: 180
    infoprovider_period: null

  # sha256 of each wheel in files_repo, per set: salt (what ark deploy installs Salt from) and
  # bridge (arc-bridge and its dependencies, installed on the CE). Hosts install exactly these
  # files and check each against its sha256 here, never against the files server. ark bundle
  # writes both sets into its pillar.yaml (Salt's wheels are compiled, so each bundle has its own):
  #   salt: {salt-3008.4-py3-none-any.whl: <sha256>, ...}
  #   bridge: {arc_bridge-0.1.0-py3-none-any.whl: <sha256>, PyYAML-...whl: <sha256>, ...}
  wheels:
    salt: {}
    bridge: {}

  bridge:
    # The virtualenv arkd and arc-bridge are installed into.
    venv: /opt/ark/venv
    # arkd's Unix socket (/run/DIR/NAME); the LRMS scripts connect to it.
    socket: /run/arkd/arkd.sock
    # arkd's credentials: the kubeconfig the kubernetes formula writes for the Kubernetes user
    # named here, whom the RBAC lets touch only Jobs and pods in the VO namespaces.
    kubeconfig: /etc/ark/arkd.kubeconfig
    kubernetes_user: arkd
    # The RTE through which a job names its image: (runtimeenvironment="ENV/CONTAINER" "tools:2").
    image_rte: ENV/CONTAINER
    # How pods see A-REX's session directory (arex:sessiondir). One of:
    # - hostPath: the path on the pod's node. A site of one host, or one whose CE and workers all
    #   mount one shared file system there themselves (NFS from /etc/fstab, say).
    # - persistentVolumeClaim: the claim `claim_name`, which the admin makes in every VO namespace
    #   (CephFS, NFS through a CSI driver ...); the CE mounts the same file system at sessiondir.
    # - glusterfs: ARK shares it (salt/sessions). The CE serves a GlusterFS volume from `brick`
    #   and mounts it at sessiondir; the control plane makes the claim `claim_name` in each VO
    #   namespace; each worker's kubelet mounts the volume for the job's pod. Only hosts with the
    #   site's sessions certificate (the CE and the workers, /etc/ark/pki/sessions.crt) may mount
    #   it: its traffic is TLS with that certificate. Ports on the CE: 24007 (glusterd) and one from 49152 (the brick).
    session_volume:
      type: hostPath
      claim_name: ark-sessions
      glusterfs:
        volume: ark-sessions
        # Where the CE keeps the files: a directory of its own, outside sessiondir.
        brick: /srv/ark/sessions
        # The CE's address, which workers mount from; ark init sets it from the inventory, and a
        # CE defaults to its own node_ip.
        server: ""
    # Seconds a pod may fail to pull its image before its job fails. The kubelet retries a failed
    # pull after 10 s, 20 s, 40 s ... up to 300 s: 300 rides out a registry restart of a few minutes
    # (bench/faults) at the cost of an image missing from the registry being reported that late.
    image_pull_grace_seconds: 300
    # Seconds a running job's pod stays bound to a node that is not ready (its kubelet stopped
    # answering) before Kubernetes gives it up and arkd fails the job naming the node: the pods'
    # tolerationSeconds for the not-ready and unreachable taints. Kubernetes' default is 300; less
    # fails jobs sooner, but also through a kubelet restart or a short network outage.
    node_lost_seconds: 300
    # Values for jobs that give none, and upper bounds for any job (larger is refused at submit).
    defaults:
      memory_mb: 2048
      walltime_seconds: 86400
    limits:
      # Largest scratch (disk) a job may ask for, in MB.
      max_disk_mb: 1048576
      max_count: 64
      max_memory_mb: 262144
      max_walltime_seconds: 1209600
