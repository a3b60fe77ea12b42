"""Do the moments work? Funnel and lift against the holdout, per moment kind.

Every moment kind with a holdout has two arms: users shown it and users held
out of it (``pqlsdk_moment_shown`` and ``pqlsdk_moment_held_out`` messages). This
package reads a history (a file of messages, or the collector's storage), and
reports per kind the users shown and held out, who clicked and dismissed, who
converted (the rules file's ``[moments] conversion``) within the window after
their first exposure, each arm's rate, the lift with its 95 % Newcombe interval,
and a verdict. ``pqlsdk moments RULES SOURCE`` prints it; the collector's
``/moments`` page draws it. The attribution rule is in ``_funnel``, the interval
in ``_interval`` (and both in docs/moments.md).

```python
from pqlsdk.lift import measure
```
"""

from __future__ import annotations

from ._funnel import KindReport, MomentsReport, Running, measure
from ._interval import DETECT, needed_per_arm, newcombe, verdict

__all__ = [
    "DETECT",
    "KindReport",
    "MomentsReport",
    "Running",
    "measure",
    "needed_per_arm",
    "newcombe",
    "verdict",
]
