"""Use cases: every read and write path, each calling the policy module first."""
