"""Checks a Chrome trace-event file (mnist-dist train --trace) as a viewer would read it, and summarises it as
JSON for EndToEndTests/FormatReaderTests: process and thread names, how many complete events of each phase each
rank has, how many phases lie outside their step's span, and how far apart the ranks' all-reduces end.

The rules checked are the Trace Event Format's (the format Perfetto, chrome://tracing and Speedscope read):
a JSON object with a traceEvents list; each event with name, ph, pid and tid; complete events ("X") with
numeric, non-negative ts and dur; metadata events ("M") naming processes and threads.

Usage: python check_trace.py TRACE.json"""
import json
import statistics
import sys
from collections import Counter, defaultdict


def fail(message):
    sys.exit("check_trace: " + message)


def main(path):
    with open(path) as f:
        trace = json.load(f, parse_constant=lambda c: fail(f"{c} is not JSON"))
    events = trace.get("traceEvents")
    if not isinstance(events, list) or not events:
        fail("no traceEvents list")
    processes, threads = {}, {}
    complete = []
    for e in events:
        for key in ("name", "ph", "pid", "tid"):
            if key not in e:
                fail(f"an event lacks {key}: {e}")
        if e["ph"] == "M":
            if e["name"] == "process_name":
                processes[e["pid"]] = e["args"]["name"]
            elif e["name"] == "thread_name":
                threads[(e["pid"], e["tid"])] = e["args"]["name"]
        elif e["ph"] == "X":
            if not all(isinstance(e[k], (int, float)) and e[k] >= 0 for k in ("ts", "dur")):
                fail(f"bad ts or dur: {e}")
            if (e["pid"], e["tid"]) not in threads:
                fail(f"an event on an unnamed track: {e}")
            complete.append(e)
        else:
            fail(f"unexpected phase type {e['ph']}")
    rank = {pid: index for index, pid in enumerate(sorted(processes))}  # processes in order are ranks 0, 1, ...
    counts = defaultdict(Counter)
    for e in complete:
        counts[str(rank[e["pid"]])][e["name"]] += 1
    steps = {(e["pid"], e["args"]["step"]): e for e in complete if e["name"] == "step"}
    not_nested = 0
    for e in complete:
        if e["name"] in ("step", "evaluation", "checkpoint"):
            continue
        step = steps.get((e["pid"], e["args"]["step"]))
        if step is None or e["ts"] < step["ts"] - 1 or e["ts"] + e["dur"] > step["ts"] + step["dur"] + 1:
            not_nested += 1
    ends = defaultdict(dict)
    for e in complete:
        if e["name"] == "all-reduce wait":
            ends[e["args"]["step"]][e["pid"]] = e["ts"] + e["dur"]
    skews = [max(v.values()) - min(v.values()) for v in ends.values() if len(v) > 1]
    json.dump({"processes": [processes[p] for p in sorted(processes)],
               "threads": sorted({name for (pid, tid), name in threads.items() if rank.get(pid) == 0}),
               "unique_thread_ids": len({tid for (pid, tid) in threads}) == len(threads),
               "counts": counts, "not_nested": not_nested,
               "dropped": trace.get("otherData", {}).get("dropped_events", -1),
               "median_allreduce_end_skew_us": statistics.median(skews) if skews else None}, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1])
