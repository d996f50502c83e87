"""What every rule script shares: its log file, and turning known failures into one clear message."""

from __future__ import annotations

import logging
import sys
import traceback
from contextlib import contextmanager

from .errors import ExplainedError


@contextmanager
def rule_step(snakemake, name: str):
    """Log to the rule's ``log:`` file (progress bars included); explained failures end in one message.

    The message also goes to the terminal, so the user reads the cause without opening the log.
    """
    terminal = sys.stderr
    log_path = snakemake.log[0]
    with open(log_path, "a", buffering=1) as log_file:
        sys.stderr = log_file  # tqdm and warnings land in the rule's log
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=log_file, force=True
        )
        log = logging.getLogger(f"wavefold.{name}")
        try:
            yield log
        except ExplainedError as error:  # its message already says what is wrong and what to do
            log.error("%s", error)
            print(f"\nwavefold {name}: {error}\n(log: {log_path})", file=terminal)
            sys.exit(1)
        except Exception:
            log.error("unexpected failure:\n%s", traceback.format_exc())
            raise
        finally:
            sys.stderr = terminal
