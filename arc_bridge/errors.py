"""Errors whose message is shown as-is to a grid user or a site admin.

A-REX shows the first line of a failed submit script's output to the user, so every message is a
single line that names the offending value and says what would be accepted instead.
"""


class BridgeError(Exception):
    """Base class: the message is meant for people, not for stack traces."""

    def __str__(self) -> str:
        # One line, whatever a caller interpolated into the message.
        return " ".join(super().__str__().split())


class JobRejected(BridgeError):
    """The job description cannot be run here; nothing was created."""


class ConfigError(BridgeError):
    """The bridge configuration is invalid."""


class NotAllowed(BridgeError):
    """The caller may not do this (wrong user, wrong VO)."""


class KubernetesFailed(BridgeError):
    """Kubernetes refused a request of arkd's, or did not answer it in time; nothing was done."""
