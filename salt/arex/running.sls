{%- from "ark/map.jinja" import ark with context %}
{%- set arex = ark.arex %}
{#- Same rule as arex.configured: the site CA is trusted unless the admin names a directory. #}
{%- set site_ca = not arex.x509_cert_dir %}
{#- 6.17's arc.conf has no REST listen address and no infoprovider period, but the service XML
    that the start scripts generate has both (<tcp:Interface>, <arex:InfoproviderWakeupPeriod>).
    Rather than edit files dpkg owns (an upgrade would silently undo it), each unit that needs
    a change runs a patched copy of its packaged script from /usr/local/share/ark through a
    systemd drop-in; with the pillar at ARC's behaviour (listen 0.0.0.0, no period) copy and
    drop-in are removed and the packaged unit runs untouched. #}
{%- set gmconfig = '<arex:gmconfig>$ARC_RUNTIME_CONFIG</arex:gmconfig>' %}
{%- set listen = '<tcp:Listen><tcp:Port>$arex_port</tcp:Port></tcp:Listen>' %}
{%- set period_patch = [] %}
{%- if arex.get('infoprovider_period') is not none %}
{#-   The element counts tenths of a second (measured on 6.17). #}
{%-   set tenths = [1, (arex.infoprovider_period * 10) | round | int] | max %}
{%-   do period_patch.append([gmconfig, gmconfig ~ '<arex:InfoproviderWakeupPeriod>' ~ tenths ~ '</arex:InfoproviderWakeupPeriod>']) %}
{%- endif %}
{%- set listen_patch = [] %}
{%- if arex.listen != '0.0.0.0' %}
{%-   do listen_patch.append([listen, '<tcp:Listen><tcp:Interface>' ~ arex.listen ~ '</tcp:Interface><tcp:Port>$arex_port</tcp:Port></tcp:Listen>']) %}
{%- endif %}
{%- set units = {'arc-arex': period_patch, 'arc-arex-ws': period_patch + listen_patch} %}

include:
  - arex.configured

{% for unit, patches in units | dictsort %}
{%- set script = unit ~ '-start' %}
{%- if patches %}
ark-arex-{{ unit }}-patched-script:
  file.managed:
    - name: /usr/local/share/ark/{{ script }}
    - source: salt://arex/files/start-script.jinja
    - template: jinja
    - user: root
    - group: root
    - mode: '0755'
    - makedirs: True
    - context:
        packaged: /usr/share/arc/{{ script }}
        substitutions: {{ patches | json }}
    - require:
      - pkg: ark-arex-packages-installed

ark-arex-{{ unit }}-dropin:
  file.managed:
    - name: /etc/systemd/system/{{ unit }}.service.d/ark.conf
    - user: root
    - group: root
    - mode: '0644'
    - makedirs: True
    - contents: |
        # Managed by Salt (salt/arex/running.sls): runs the patched copy of the start script.
        [Service]
        ExecStart=
        ExecStart=/usr/local/share/ark/{{ script }}
    - require:
      - file: ark-arex-{{ unit }}-patched-script
{%- else %}
ark-arex-{{ unit }}-patched-script:
  file.absent:
    - name: /usr/local/share/ark/{{ script }}

ark-arex-{{ unit }}-dropin:
  file.absent:
    - name: /etc/systemd/system/{{ unit }}.service.d/ark.conf
{%- endif %}

{% endfor %}
{#- systemd only sees a new or removed drop-in after a reload; restarting before it would run
    the old ExecStart. #}
ark-arex-units-reloaded:
  cmd.run:
    - name: systemctl daemon-reload
    - onchanges:
      - file: ark-arex-arc-arex-dropin
      - file: ark-arex-arc-arex-ws-dropin

{#- Both daemons read arc.conf, the host credentials and the CA only at start. #}
{%- for unit in units | sort %}

ark-arex-{{ unit }}-running:
  service.running:
    - name: {{ unit }}
    - enable: True
    - require:
      - cmd: ark-arex-units-reloaded
      - cmd: ark-arex-dhparams-present
      - file: ark-arex-controldir-present
      - file: ark-arex-sessiondir-present
      - file: ark-arex-tmpdir-present
    - watch:
      - file: ark-arex-config-managed
      - file: ark-arex-host-cert-installed
      - file: ark-arex-host-key-installed
{%- if site_ca %}
      - file: ark-arex-site-ca-installed
{%- endif %}
{%- for vo in ark.vos | sort %}
      - file: ark-arex-authgroup-{{ vo }}-subjects
{%- endfor %}
      - file: ark-arex-{{ unit }}-patched-script
      - file: ark-arex-{{ unit }}-dropin
{%- endfor %}
