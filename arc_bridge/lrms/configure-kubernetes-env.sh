# Sourced by ARC's submit_common.sh (common_init) for lrms = kubernetes.
# The job runs in a pod that sees the session directory at the frontend's path.
RUNTIME_NODE_SEES_FRONTEND=yes
true
