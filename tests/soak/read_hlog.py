"""Reads an infraqual soak log with the Python `hdrhistogram` package's own
interval log reader (hdrh.log.HistogramLogReader) and prints, per interval
line, what it decoded: tag, start, length, total count, min, max, every
recorded bucket (highest equivalent value, count) and p50/p99 by the
⌈q × count⌉ rule from those buckets. The Rust test compares it with
infraqual's own reading of the same file."""

import json
import math
import sys

from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader


def rank_value(buckets, total, q):
    rank = max(1, math.ceil(q * total))
    seen = 0
    for value, count in buckets:
        seen += count
        if seen >= rank:
            return value
    return 0


def main(path):
    reader = HistogramLogReader(path, HdrHistogram(1, 3600 * 10**9, 3))
    out = []
    while True:
        h = reader.get_next_interval_histogram()
        if h is None:
            break
        buckets = [
            [item.value_iterated_to, item.count_added_in_this_iter_step]
            for item in h.get_recorded_iterator()
        ]
        total = h.get_total_count()
        out.append(
            {
                "tag": h.get_tag(),
                "start_ms": round(h.get_start_time_stamp() - reader.get_start_time_sec() * 1000.0),
                "count": total,
                "min": h.get_min_value(),
                "max": h.get_max_value(),
                "buckets": buckets,
                "p50": rank_value(buckets, total, 0.5),
                "p99": rank_value(buckets, total, 0.99),
            }
        )
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1])
