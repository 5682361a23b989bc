"""Children that receive signals as they would from a terminal."""

import signal


def as_from_a_terminal() -> None:
    """A preexec_fn: SIGINT and SIGHUP at their defaults in the child. A test run started in the background
    (`cmd &`, nohup) ignores them, an ignored signal stays ignored across exec, and Python then never
    raises KeyboardInterrupt: the tests of Ctrl-C and hangups would wait for nothing."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
