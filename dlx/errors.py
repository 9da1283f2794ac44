"""The three ways a run can end badly, each with its exit code.

Commands raise these; `dlx.cli.main` turns them into one line on stderr (and an `error`
record on stdout with --json). Nothing else in dlx calls `sys.exit`.
"""


# Said of every command's sizes, so in words, not one command's option names (bench has
# --batch and --seq where the training commands have --batch-size and --seq-len).
SMALLER = "try smaller sizes (batch, widths, sequence length, seeds)"


class DlxError(Exception):
    exit_code = 1
    kind = "runtime"


class UsageError(DlxError):
    """Bad input: an option value, a data file, a run directory. Exit 2, nothing written."""

    exit_code = 2
    kind = "usage"


class RunFailure(DlxError):
    """The run started but cannot go on (divergence, disk). Exit 1, earlier results kept."""

    exit_code = 1
    kind = "runtime"


class LocalFailure(RunFailure):
    """A RunFailure of this process's own output (its stdout, its files, its checkpoint
    writes). In a multi-host run the other processes do not meet it, so this one ends
    without them (runtime.end_alone); a divergence or a size refused, met by every process
    alike, stays a RunFailure."""


class Interrupted(DlxError):
    """SIGINT/SIGTERM: a checkpoint was saved and the run can be resumed. Exit 130."""

    exit_code = 130
    kind = "interrupted"
