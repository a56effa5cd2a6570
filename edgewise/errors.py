"""The one exception type users see: its message is a single line naming the bad input."""


class EdgewiseError(Exception):
    """A user-facing error. The CLI prints `error: <message>` and exits with status 2."""
