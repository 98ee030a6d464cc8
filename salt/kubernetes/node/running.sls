{#- containerd restarts without touching running containers (KillMode=process in Debian's unit). #}
include:
  - kubernetes.node.configured

ark-containerd-running:
  service.running:
    - name: containerd
    - enable: True
    - watch:
      - file: ark-containerd-configured
      - file: ark-cni-configured
      - ark-pki-ca
      - pkg: ark-node-packages-installed

ark-kubelet-running:
  service.running:
    - name: kubelet
    - enable: True
    - require:
      - service: ark-containerd-running
      - cmd: ark-node-sysctl-applied
    - watch:
      - file: ark-kubelet-unit
      - file: ark-kubelet-installed
      - file: ark-kubelet-configured
      - file: ark-kubeconfig-kubelet
      - ark-pki-ca
      - x509: ark-pki-kubelet-cert
      - x509: ark-pki-kubelet-serving-cert
