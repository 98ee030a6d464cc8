"""ARK's LRMS integration: A-REX jobs run as Kubernetes Jobs, supervised by the daemon arkd."""
