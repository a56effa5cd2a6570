"""Point-to-point transfer time over a channel (a link or a shared medium)."""
from __future__ import annotations

from edgewise.hardware.cluster import Channel


def transfer_time_s(nbytes: int, channel: Channel | None) -> float:
    """Latency plus serialisation time; zero when nothing crosses or both ends are one device."""
    if channel is None or nbytes <= 0:
        return 0.0
    return channel.latency_s + nbytes / channel.bandwidth_bytes_per_s
