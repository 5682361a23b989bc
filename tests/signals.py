"""Children that receive signals as they would from a terminal."""

import signal
import subprocess


def popen_as_from_a_terminal(*args, **kwargs) -> subprocess.Popen:
    """subprocess.Popen, with SIGINT and SIGHUP not ignored in the child.

    A test run started in the background (`cmd &`, nohup) ignores them, an ignored
    signal stays ignored across exec, and the child's Python then never raises
    KeyboardInterrupt: the tests of Ctrl-C and hangups would wait for nothing. A signal
    caught here (not ignored) is reset to its default in the child by exec; no
    preexec_fn, which would fork a process with JAX's threads running.
    """
    wanted = {signal.SIGINT: signal.default_int_handler, signal.SIGHUP: signal.SIG_DFL}
    previous = {signum: signal.getsignal(signum) for signum in wanted}
    for signum, handler in wanted.items():
        if previous[signum] == signal.SIG_IGN:
            signal.signal(signum, handler)
    try:
        return subprocess.Popen(*args, **kwargs)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
