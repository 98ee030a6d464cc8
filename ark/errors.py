"""Errors whose message is shown as-is to a site admin: one line naming the input that is wrong
and what would be accepted instead."""

from __future__ import annotations


class ArkError(Exception):
    """Base class: the message is meant for people, not for stack traces."""

    def __str__(self) -> str:
        # One line, whatever a caller interpolated into the message (file paths, tool output).
        return " ".join(super().__str__().split())


class InventoryError(ArkError):
    """The inventory (or a file it names) is invalid; `key` is the inventory key at fault."""

    def __init__(self, key: str, message: str):
        super().__init__(f"inventory {key}: {message}" if key else f"inventory: {message}")
        self.key = key
