{%- from "ark/map.jinja" import ark with context %}

include:
  - registry.running

# Distribution's garbage collector must not run beside a serving registry (it would delete blobs
# an upload is still linking), so the unit stops the registry and always starts it again. Without
# --delete-untagged: in 2.8 it also deletes the per-platform manifests of multi-arch images.
registry-gc-service-managed:
  file.managed:
    - name: /etc/systemd/system/ark-registry-gc.service
    - contents: |
        [Unit]
        Description=ARK registry garbage collection (registry stopped meanwhile)
        After=docker-registry.service
        # Until the first push there is nothing to collect, and the collector fails on the missing tree.
        ConditionPathExists={{ ark.registry.storage }}/docker/registry/v2/repositories

        [Service]
        Type=oneshot
        User=docker-registry
        ExecStartPre=+/bin/systemctl stop docker-registry.service
        ExecStart=/usr/bin/docker-registry garbage-collect /etc/docker/registry/config.yml
        ExecStopPost=+/bin/systemctl start docker-registry.service
    - require:
      - service: registry-service-running

registry-gc-timer-managed:
  file.managed:
    - name: /etc/systemd/system/ark-registry-gc.timer
    - contents: |
        [Unit]
        Description=ARK registry garbage collection schedule

        [Timer]
        OnCalendar={{ ark.registry.gc_schedule }}
        Persistent=true

        [Install]
        WantedBy=timers.target

registry-gc-timer-running:
  service.running:
    - name: ark-registry-gc.timer
    - enable: True
    - watch:
      - file: registry-gc-service-managed
      - file: registry-gc-timer-managed
