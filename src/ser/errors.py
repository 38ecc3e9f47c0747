"""The one base of every error that ser reports as a sentence instead of a traceback.

A UserError is a problem with what the user gave (params.yaml, a file, a folder, a download, a model
bundle), never a bug: its message is one line that names the file, key or option and says what to do. Stage
scripts (ser.stage.run) and the `ser` command print it as that line and exit with status 2; anything else is a
bug and keeps its traceback.
"""


class UserError(Exception):
    """A problem with the user's input, said in one line."""
