"""Probe: what each slow call of ``burst_tail.py`` was doing, from a ``perf`` trace (issue 21).

Record and read (the times are CLOCK_MONOTONIC, as ``perf_counter_ns``)::

    perf record -a -k CLOCK_MONOTONIC -e sched:sched_switch -e page-faults -c 1 \\
        -e irq:softirq_entry -e irq:irq_handler_entry -e irq_vectors:local_timer_entry \\
        -o DATA -- env PYTHONPATH=src python bench/probes/burst_tail.py --out SLOW.json
    perf script -i DATA -F cpu,tid,time,event,trace --ns > TRACE
    python bench/probes/slow_calls.py SLOW.json TRACE [THRESHOLD_US]

Each call over the threshold (28 µs) gets one cause: ``GIL wait (threads)``
(the caller blocked: it gave up the GIL and waited to get it back while those
of our threads ran), ``preempted -> who`` (switched out while runnable),
else ``running`` (never off its CPU) with what interrupted it there: page
faults, timer interrupts, soft interrupts. Timer interrupts on a VM's vCPU are
the machine's own cost: a loop with no thread and no SDK has them too.
"""

from __future__ import annotations

import bisect
import json
import re
import sys
from collections import Counter
from pathlib import Path

_LINE = re.compile(r"^\s*(\d+)\s+\[(\d+)\]\s+(\d+)\.(\d+):\s+(\S+):\s*(.*)$")
_NEXT = re.compile(r"next_pid=(\d+)")
_STATE = re.compile(r"prev_state=(\S+)")
_ACTION = re.compile(r"action=(\w+)")

Event = tuple[int, int, str, str]  # ns, tid, event, its text


def events(trace: Path) -> list[Event]:
    found: list[Event] = []
    with trace.open() as lines:
        for line in lines:
            m = _LINE.match(line)
            if m:
                ns = int(m.group(3)) * 1_000_000_000 + int(m.group(4).ljust(9, "0")[:9])
                found.append((ns, int(m.group(1)), m.group(5), m.group(6)))
    found.sort()
    return found


def cause(window: list[Event], caller: int, names: dict[int, str]) -> str:
    """One slow call's cause, from the events during it."""
    outs: list[tuple[str, str]] = []
    ran: set[str] = set()
    faults = 0
    irqs: set[str] = set()
    for _, tid, event, text in window:
        if event == "sched:sched_switch":
            nxt = _NEXT.search(text)
            target = int(nxt.group(1)) if nxt else 0
            if f"prev_pid={caller} " in text:
                state = _STATE.search(text)
                outs.append((state.group(1) if state else "?", names.get(target, "other process")))
            elif target in names and target != caller:
                ran.add(names[target])
        elif tid == caller and "fault" in event:
            faults += 1
        elif tid == caller and ("irq" in event or "timer" in event):
            action = _ACTION.search(text)
            irqs.add("timer" if "timer" in event else action.group(1) if action else "irq")
    if any(state.startswith(("S", "D")) for state, _ in outs):
        return f"GIL wait ({'/'.join(sorted(ran)) or '?'})"
    if outs:
        return "preempted -> " + "/".join(sorted({who for _, who in outs}))
    parts = ["running"]
    if faults:
        parts.append("page fault")
    if "timer" in irqs:
        parts.append("timer interrupt")
    elif irqs:
        parts.append("soft interrupt")
    return " + ".join(parts)


def main() -> None:
    slow = json.loads(Path(sys.argv[1]).read_text())
    trace = events(Path(sys.argv[2]))
    threshold = float(sys.argv[3]) * 1000 if len(sys.argv) > 3 else 28_000
    names = {tid: name for name, tid in slow["threads"].items()}
    caller = slow["threads"]["MainThread"]
    times = [event[0] for event in trace]
    causes: Counter[str] = Counter()
    for _, start, took in slow["slow"]:
        if took < threshold:
            break
        window = trace[bisect.bisect_left(times, start) : bisect.bisect_right(times, start + took)]
        causes[cause(window, caller, names)] += 1
    print(f"calls over {threshold / 1000:g} us: {sum(causes.values())}")
    for what, count in causes.most_common():
        print(f"  {count:4d}  {what}")


if __name__ == "__main__":
    main()
