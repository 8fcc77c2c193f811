"""The one exception type that carries a message for the user, not a bug."""


class MindsetError(Exception):
    """Bad input or an impossible request, explained in one sentence a user can act on.

    The CLI prints it as one line and exits with code 2; anything else is a bug and keeps its traceback.
    """
