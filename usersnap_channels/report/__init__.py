"""The self-contained HTML report of a channel's themes and trends."""
