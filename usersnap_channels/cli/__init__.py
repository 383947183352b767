"""The `usersnap-channels` command line."""
