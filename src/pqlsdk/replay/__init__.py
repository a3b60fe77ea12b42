"""Replay and tuning: backtest rules on a history of events and calibrate them from outcomes.

``pqlsdk replay RULES EVENTS`` streams a history through the client's own fold
and scoring (``pqlsdk._history``, ``pqlsdk._scoring``), then reports users and
accounts per tier and score band; with ``--outcomes`` it adds conversion rates
(Wilson 95 % intervals), time to convert and revenue per band, with no
look-ahead, and suggests thresholds; ``--compare`` puts a second rules file
beside the first; single loggers are listed under a sustained-usage model;
``--report`` writes an offline HTML report with charts.

The same works from Python:

```python
from pqlsdk.replay import load_outcomes, replay
```
"""

from __future__ import annotations

from ._bands import DEFAULT_EDGES, Bands, Row, parse_edges, rows, wilson
from ._calibrate import best_separation, moves, target_threshold
from ._outcomes import Conversion, load_outcomes
from ._run import REORDER_WINDOW, Checkpoint, Replay, Standing, replay
from ._summary import LOOK_AHEAD_RULE, summarize

__all__ = [
    "DEFAULT_EDGES",
    "LOOK_AHEAD_RULE",
    "REORDER_WINDOW",
    "Bands",
    "Checkpoint",
    "Conversion",
    "Replay",
    "Row",
    "Standing",
    "best_separation",
    "load_outcomes",
    "moves",
    "parse_edges",
    "replay",
    "rows",
    "summarize",
    "target_threshold",
    "wilson",
]
