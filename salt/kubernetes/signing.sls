{#- The CA server of a site with a Salt master (pillar ark:pki:ca_server, the master's own minion):
    one signing policy per host it signs for (ark:pki:signed_hosts) and certificate, made from the
    table kubernetes/pki.sls issues from, so each host can have its own certificates and nothing
    else. Other hosts ask for them through the master (peer x509.sign_remote_certificate).
    The policies are this minion's grains, where x509_v2 finds them (config.get): its pillar is
    rendered on the master from plain files, and minion config would need a restart. Grains are
    this host's own to set, and hold no secret: the key stays in its file. -#}
{%- from "ark/map.jinja" import ark with context %}
{%- from "kubernetes/map.jinja" import k8s with context %}
{%- from "sessions/map.jinja" import sessions with context %}
{%- from "kubernetes/leaves.jinja" import closed_policy, signing_policy, site_leaves %}
{%- if ark.pki.ca_server != grains.id %}
{{ raise('kubernetes.signing runs on the CA server alone (pillar ark:pki:ca_server), not on ' ~ grains.id) }}
{%- endif %}

include:
  - kubernetes.ca

{%- set policies = {} %}
{%- for host, spec in ark.pki.signed_hosts | dictsort %}
{%-   set table = {} %}
{%-   do site_leaves(table, ark, k8s, sessions, spec.roles, spec.node_name, spec.node_ip) %}
{%-   for id, certificate in table | dictsort %}
{%-     set policy = {'minions': host, 'signing_cert': k8s.ca_cert, 'signing_private_key': k8s.ca_key} %}
{%-     do closed_policy(policy, certificate) %}
{%-     do policies.update({signing_policy(host, id): policy}) %}
{%-   endfor %}
{%- endfor %}

ark-pki-signing-policies:
  grains.present:
    - name: x509_signing_policies
    - value: {{ policies | json }}
    - force: True
    - require:
      - ark-pki-ca
