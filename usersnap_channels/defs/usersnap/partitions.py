"""The daily partitions of the imported feedback (one definition shared by the assets and the check)."""

from usersnap_channels.partitions import feedback_daily_partition

feedback_daily_partitions = feedback_daily_partition()
