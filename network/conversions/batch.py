"""The group commit's former module name, kept only for tests/test_green.py's import: use groupcommit.py.

Delete once that test imports `network.conversions.groupcommit`.
"""

from network.conversions.groupcommit import GroupCommit

__all__ = ["GroupCommit"]
