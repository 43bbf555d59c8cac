"""Progress bars: tqdm on a terminal or in a notebook, a few plain lines anywhere else (log files)."""

from __future__ import annotations

import sys
import time
from typing import Any

__all__ = ["LineProgress", "progress_bar"]


def progress_bar(total: int, desc: str, unit: str, *, disable: bool = False, file: Any = None) -> Any:
    """The progress bar of a long run: `update`, `set_description`, `set_postfix`, `close`, and a
    context manager, as tqdm's.

    **Arguments:**

    - `total`: the number of units the run takes.
    - `desc`, `unit`: shown as tqdm shows them (`fit: 40%|...| 400/1000 [00:20<00:30, step/s]`).
    - `disable`: show nothing.
    - `file`: a text stream to write to; default `sys.stderr`, looked up when the bar is made.

    **Returns:**

    In a notebook, or when `file` is a terminal, a tqdm bar redrawn in place. Otherwise (output going
    to a log file or a pipe, where each redraw would stay as a line of its own) a
    `LineProgress`: a line at the start, one at each
    third of the way, and one at the end.
    """
    import tqdm.auto
    import tqdm.std

    stream = sys.stderr if file is None else file
    if disable or (file is None and _in_notebook()) or _is_terminal(stream):
        bar_class = tqdm.auto.tqdm if file is None else tqdm.std.tqdm
        return bar_class(total=total, desc=desc, unit=unit, leave=False, disable=disable, file=stream)
    return LineProgress(total, desc, unit, stream)


def _in_notebook() -> bool:
    """Whether this runs in a Jupyter kernel (where tqdm draws a widget), as `tqdm.auto` decides."""
    ipython = sys.modules.get("IPython")
    try:
        shell = ipython.get_ipython() if ipython is not None else None
        return shell is not None and "IPKernelApp" in shell.config
    except Exception:  # an IPython too old or too odd to ask
        return False


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class LineProgress:
    """A progress bar for output that is not a terminal: a few complete lines instead of a redraw
    per update.

    Writes a line when made, when the count first passes each third of `total`, and when closed (the
    count reached, the time taken, the last postfix), each in tqdm's format.
    """

    #: Fractions of the total at which a line is written, besides the start and the end.
    MARKS = (1 / 3, 2 / 3)

    def __init__(self, total: int, desc: str, unit: str, file: Any):
        self.total = int(total)
        self.desc = desc
        self.unit = unit
        self.file = file
        self.n = 0
        self.postfix = ""
        self.start = time.monotonic()
        self.marks = [mark * self.total for mark in self.MARKS]
        self.closed = False
        self._write()

    def update(self, n: int = 1) -> None:
        """Advance the count by `n`; writes a line when it passes a mark."""
        self.n += int(n)
        passed = [mark for mark in self.marks if self.n >= mark]
        if passed and self.n < self.total:
            self.marks = [mark for mark in self.marks if self.n < mark]
            self._write()

    def set_description(self, desc: str, refresh: bool = True) -> None:
        """The text before the count, from the next line on."""
        self.desc = desc

    def set_postfix(self, refresh: bool = True, **values: Any) -> None:
        """`name=value` pairs after the count, from the next line on."""
        self.postfix = ", ".join(f"{name}={value}" for name, value in values.items())

    def close(self) -> None:
        """Write the final line (once)."""
        if not self.closed:
            self.closed = True
            self._write()

    def _write(self) -> None:
        from tqdm.std import tqdm

        line = tqdm.format_meter(
            self.n,
            self.total,
            time.monotonic() - self.start,
            prefix=self.desc,
            unit=self.unit,
            postfix=self.postfix or None,
            ncols=None,
        )
        self.file.write(line + "\n")
        self.file.flush()

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()
