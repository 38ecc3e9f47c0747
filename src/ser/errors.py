"""The one base of every error that ser reports as a sentence instead of a traceback, and how it stays one line.

A UserError is a problem with what the user gave (params.yaml, a file, a folder, a download, a model
bundle, an option), never a bug: its message is one line that names the file, key or option and says what to
do. Stage scripts (ser.stage.run) and the `ser` command print it as that line and exit with status 2; anything
else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """A problem with the user's input, said in one line."""


def shown(name: object) -> str:
    """`name` with its unprintable characters (newline, tab, escape, invalid UTF-8) escaped as Python
    writes them (`\\n`, `\\x1b`, `\\udcff`): one line, readable, and nothing lost."""
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in str(name))


def flat(text: str) -> str:
    """A message from a library on one line: whitespace runs (newlines too) become one space."""
    return shown(" ".join(text.split()))
