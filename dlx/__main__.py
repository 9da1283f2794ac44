"""`dlx` and `python -m dlx`: signals are caught from the first line on, before the imports
(a Ctrl-C during them gave a traceback or a crash), then the command line runs."""

import os
import signal
import sys


def main() -> None:
    from dlx import runtime

    runtime.catch_signals()
    try:
        from dlx.cli import main as cli_main

        cli_main()
    finally:
        # The outcome is decided (the summary written, or the error reported). The exit that
        # follows takes JAX's teardown, ~0.3 s, during which Python puts the default handlers
        # back: a signal then killed the process without a word (exit -2 or -15, no record).
        for s in (signal.SIGINT, signal.SIGTERM):
            signal.signal(s, signal.SIG_IGN)
        # Teardown finalizes what libraries left pending: after a damaged checkpoint was
        # reported, orbax's unfinished reads each printed an "Exception ignored" traceback
        # (a hundred lines under the one-line error). DLX_DEBUG=1 keeps them.
        if os.environ.get("DLX_DEBUG", "0").lower() in ("", "0", "false", "no", "off"):  # runtime.debugging()
            sys.unraisablehook = lambda unraisable: None
            # Some come from asyncio's handler on orbax's threads ("Event loop is closed"):
            # past the outcome, nothing on stderr is for the user.
            try:
                sys.stderr.flush()
            except (OSError, ValueError):
                pass
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)
            os.close(devnull)


if __name__ == "__main__":
    main()
