{#- Each component restarts when its unit, binary, credentials or kubeconfig change. #}
{%- from "ark/map.jinja" import ark with context %}
{%- from "kubernetes/map.jinja" import k8s with context %}
{%- set readyz = k8s.bin_dir ~ '/kubectl --kubeconfig=' ~ ark.kubernetes.admin_kubeconfig ~ ' get --raw=/readyz' %}

include:
  - kubernetes.control_plane.configured

ark-etcd-running:
  service.running:
    - name: etcd
    - enable: True
    - watch:
      - file: ark-etcd-configured
      - pkg: ark-etcd-package-installed
      - x509: ark-pki-etcd-server-cert
      - x509: ark-pki-etcd-peer-cert

ark-kube-apiserver-running:
  service.running:
    - name: kube-apiserver
    - enable: True
    - require:
      - service: ark-etcd-running
    - watch:
      - file: ark-kube-apiserver-unit
      - file: ark-kube-apiserver-installed
      - ark-pki-ca
      - x509: ark-pki-apiserver-cert
      - x509: ark-pki-apiserver-kubelet-client-cert
      - x509: ark-pki-apiserver-etcd-client-cert
      - x509: ark-pki-sa-key
      - cmd: ark-pki-sa-pub

{#- States that talk to the API (arc_bridge's manifests) need it answering, not just started;
    an answering API server reports no change. #}
ark-kube-apiserver-ready:
  cmd.run:
    - name: timeout 180 sh -c 'until {{ readyz }} >/dev/null 2>&1; do sleep 1; done'
    - unless: {{ readyz }}
    - require:
      - service: ark-kube-apiserver-running
      - file: ark-kubectl-installed
      - file: ark-kubeconfig-admin

ark-kube-controller-manager-running:
  service.running:
    - name: kube-controller-manager
    - enable: True
    - require:
      - service: ark-kube-apiserver-running
    - watch:
      - file: ark-kube-controller-manager-unit
      - file: ark-kube-controller-manager-installed
      - file: ark-kubeconfig-controller-manager
      - ark-pki-ca
      - x509: ark-pki-controller-manager-cert
      - x509: ark-pki-sa-key

ark-kube-scheduler-running:
  service.running:
    - name: kube-scheduler
    - enable: True
    - require:
      - service: ark-kube-apiserver-running
    - watch:
      - file: ark-kube-scheduler-unit
      - file: ark-kube-scheduler-configured
      - file: ark-kube-scheduler-installed
      - file: ark-kubeconfig-scheduler
      - x509: ark-pki-scheduler-cert
