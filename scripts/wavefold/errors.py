"""The one base class of every failure whose message already says what is wrong and what to do.

Rule scripts end such a failure in one clear message instead of a traceback (:mod:`wavefold.steps`).
Each stage defines its own subclass next to its code; this module imports nothing, so that a rule's
code dependencies (derived from its imports, :mod:`wavefold.dependencies`) do not grow to every stage.
"""


class ExplainedError(Exception):
    """A failure whose message names the file or setting and the fix: shown without a traceback."""
