"""A KeyboardInterrupt swallowed by a library callback is raised again at the next check."""

import os
import signal
import sys
import weakref

import pytest

from spinnconv import interrupt


class _Obj:
    pass


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_swallowed_signal_is_raised_at_next_check():
    previous = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    previous_hook = sys.unraisablehook
    try:
        interrupt.install()
        interrupt.check()  # nothing received yet: no exception

        def callback(_ref):  # the signal arrives while a weakref callback runs
            os.kill(os.getpid(), signal.SIGTERM)

        obj = _Obj()
        ref = weakref.ref(obj, callback)
        del obj  # Python prints "Exception ignored" and goes on
        assert ref() is None
        with pytest.raises(KeyboardInterrupt):
            interrupt.check()
        interrupt.install()  # a fresh run starts clean
        interrupt.check()
    finally:
        signal.signal(signal.SIGTERM, previous[0])
        signal.signal(signal.SIGINT, previous[1])
        sys.unraisablehook = previous_hook
