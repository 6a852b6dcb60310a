"""One exception type for every problem a user can fix (bad config, bad data, bad CLI args).

The CLI prints ``error: <message>`` on one line and exits with status 2; nothing else
in the project catches it.
"""


class UserError(Exception):
    """A problem in the user's input, with a message that names it and the fix."""
