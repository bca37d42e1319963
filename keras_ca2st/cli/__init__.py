"""The `ca2st` command line."""
