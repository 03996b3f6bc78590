"""Local IFS Cloud and Looker API sandboxes (test and demo doubles served on loopback)."""

from .clock import ManualClock, RealTime, TimeSource

__all__ = ["ManualClock", "RealTime", "TimeSource"]
