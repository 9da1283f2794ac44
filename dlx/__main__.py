"""`dlx` and `python -m dlx`: signals are caught from the first line on, before the imports
(a Ctrl-C during them gave a traceback or a crash), then the command line runs."""

import signal


def main() -> None:
    from dlx import runtime

    runtime.catch_signals()
    runtime.mark_cli()
    said = False   # whether the outcome was reported (a normal end, or an exit with its code)
    code = 0
    try:
        from dlx.cli import main as cli_main

        cli_main()
        said = True
    except SystemExit as e:
        said = True
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        raise
    finally:
        # The outcome is decided (the summary written, or the error reported). The exit that
        # follows takes JAX's teardown, ~0.3 s, during which Python puts the default handlers
        # back: a signal then killed the process without a word (exit -2 or -15, no record).
        for s in (signal.SIGINT, signal.SIGTERM):
            signal.signal(s, signal.SIG_IGN)
        # Teardown finalizes what libraries left pending: after a damaged checkpoint was
        # reported, orbax's unfinished reads each printed an "Exception ignored" traceback
        # (a hundred lines under the one-line error). DLX_DEBUG=1 keeps them.
        if said:   # else (a broken install, say) Python's traceback is all there is to see
            runtime.silence_stderr()  # past the outcome, nothing on stderr is for the user
            # A compilation a signal left running (train.off_thread), or a multi-host
            # process ending without the others (runtime.end_alone).
            if runtime.abandoned_work() or runtime.ends_alone():
                import os
                import sys

                try:
                    sys.stdout.flush()
                except Exception:
                    pass   # a reader that left: its records are in metrics.jsonl
                os._exit(code)


if __name__ == "__main__":
    main()
