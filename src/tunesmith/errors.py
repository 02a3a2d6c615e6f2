"""The one exception type the CLI turns into a clean one-line error (exit code 2)."""


class TunesmithError(Exception):
    """A problem the user can fix: bad input, bad configuration, missing file.

    The message is a single line that names the bad value; the CLI prints it without a traceback.
    """
