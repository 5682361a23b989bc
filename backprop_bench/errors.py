"""The one error type a user can cause, which the command line shows as one line.

Every mistake a user can make (a bad argument, model spec, data file, saved run or
revision; a backend that cannot run here; a training that diverges) raises UserError
or a subclass, with a message that says what is wrong and what to do. Anything else is
a bug, and `backprop-bench` lets its traceback show. UserError is a ValueError, so
code that guards a conversion with `except ValueError` catches both, as it did before.
"""


class UserError(ValueError):
    """A mistake the user can fix; the message says which, and how."""
