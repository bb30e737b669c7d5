#!/usr/bin/env python3
"""One case of scripts/bench-etcd-cluster: etcd's measured put latency beside
two predictions of the same commit model (reports/src/etcd/model.rs):

  infraqual  `infraqual etcd` on infraqual's own fsync (etcd-wal) and rtt
  etcd-fed   the model's formula fed etcd's OWN inputs during the puts: each
             member's etcd_disk_wal_fsync_duration_seconds, the leader's
             etcd_network_peer_round_trip_time_seconds to each follower and
             its etcd_disk_backend_commit_duration_seconds (the stall at the
             apply, every 100 ms: etcd's --backend-batch-interval default)

If the etcd-fed prediction matches the measurement, the model is sound and
any error of the infraqual prediction is in infraqual's inputs; if not, the
model misses a term. Both add the same measured request time.

usage: bench-etcd-cluster-analysis.py PUTS_JSON PREDICT_JSON STATUS_JSON
         REQUEST_TIME_TXT LEADER LABEL NAME=ADDR...
"""
import json
import math
import random
import re
import sys

# The model's seed (reports/src/etcd DEFAULT_SEED) and draw count.
SEED = 0x00E7CD17
DRAWS = 20_000
BACKEND_BATCH_INTERVAL = 0.1

puts_path, predict_path, status_path, rt_path, leader, label = sys.argv[1:7]
addr_of = dict(a.split("=", 1) for a in sys.argv[7:])
m = json.load(open(puts_path))
p = json.load(open(predict_path))
status = json.load(open(status_path))


def quantile(sorted_values, f):
    return sorted_values[max(0, math.ceil(f * len(sorted_values)) - 1)]


def parse(text, name):
    """{labels: ({le: cumulative count}, sum, count)} of one histogram."""
    out = {}
    for line in text.splitlines():
        g = re.match(name + r'_(bucket|sum|count)(?:\{(.*)\})? (\S+)$', line)
        if not g:
            continue
        kind, labels, value = g.group(1), g.group(2) or "", float(g.group(3))
        if kind == "bucket":
            le = re.search(r'le="([^"]+)"', labels).group(1)
            key = re.sub(r',?le="[^"]+"', "", labels)
            out.setdefault(key, [{}, 0.0, 0.0])[0][float(le)] = value
        else:
            out.setdefault(labels, [{}, 0.0, 0.0])[1 if kind == "sum" else 2] = value
    return out


def delta(before, after):
    """after - before per label set: what happened during the puts."""
    out = {}
    for key, (buckets, s, c) in after.items():
        b = before.get(key, [{}, 0.0, 0.0])
        out[key] = ({le: v - b[0].get(le, 0.0) for le, v in buckets.items()}, s - b[1], c - b[2])
    return out


class BucketSampler:
    """Draws from a Prometheus histogram: a bucket by its count, uniform
    inside it, except the lowest bucket, whose draws take the one value that
    makes the mean the histogram's exact mean (sum / count): most fast
    syncs fall in etcd's lowest bucket (<= 1 ms), where uniform would guess."""

    def __init__(self, buckets, total_sum, total_count):
        edges = sorted(buckets.items())
        self.parts, lo, prev = [], 0.0, 0.0
        for le, cum in edges:
            n = cum - prev
            if n > 0:
                self.parts.append((lo, le if math.isfinite(le) else lo, n))
            lo, prev = le if math.isfinite(le) else lo, cum
        self.count = prev
        self.mean = total_sum / total_count if total_count > 0 else 0.0
        self.low = None
        if self.parts and self.parts[0][0] == 0.0:
            first_n = self.parts[0][2]
            rest = sum((a + b) / 2 * n for a, b, n in self.parts[1:])
            self.low = min(max((self.mean * self.count - rest) / first_n, 0.0), self.parts[0][1])
        self.weights = [n for _, _, n in self.parts]

    def ok(self):
        return self.count > 0

    def draw(self, rng):
        i = rng.choices(range(len(self.parts)), self.weights)[0]
        lo, hi, _ = self.parts[i]
        if i == 0 and self.low is not None:
            return self.low
        return rng.uniform(lo, hi)

    def upper_bound(self, f):
        if not self.parts:
            return 0.0
        cum = 0.0
        for _, hi, n in self.parts:
            cum += n
            if cum >= f * self.count:
                return hi
        return self.parts[-1][1]


names = list(addr_of)
id_of = {}
for s in status:
    for name, addr in addr_of.items():
        if f"//{addr}:" in s["Endpoint"]:
            id_of[name] = format(s["Status"]["header"]["member_id"], "x")
followers = [n for n in names if n != leader]

def member_delta(n, metric):
    return delta(parse(m["members_before"][n]["metrics"], metric),
                 parse(m["members_after"][n]["metrics"], metric)).get("", ({}, 0, 0))


wal = {n: member_delta(n, "etcd_disk_wal_fsync_duration_seconds") for n in names}
backend = {n: member_delta(n, "etcd_disk_backend_commit_duration_seconds") for n in names}
wal_grew = {n: m["members_after"][n]["wal_bytes"] - m["members_before"][n]["wal_bytes"] for n in names}
# etcd records its prober's smoothed round trip (SRTT) 5 s after start and
# every 30 s after: a mean, not a distribution, so the model takes it as a
# constant per follower.
peer_all = parse(m["members_after"][leader]["metrics"], "etcd_network_peer_round_trip_time_seconds")
peer = {f: next((v for k, v in peer_all.items() if f'To="{id_of.get(f)}"' in k), ({}, 0, 0))
        for f in followers}
peer_srtt = {f: (s / c if c > 0 else None) for f, (_, s, c) in peer.items()}

lat = sorted(m["ns"])
puts = len(lat)
mp50, mp99 = quantile(lat, 0.5), quantile(lat, 0.99)
request = [int(line) for line in open(rt_path) if line.strip() and not line.startswith("#")]

ms = lambda ns: ns / 1e6
err = lambda pred, meas: f"{100 * (pred - meas) / meas:+.0f} %"
within = lambda pred, meas: abs(pred - meas) <= 0.25 * meas

print(f"case {label}: leader {leader}, {puts} puts in {m['wall_ns'] / 1e9:.2f} s")
print(f"  measured put        p50 {ms(mp50):7.2f} ms  p99 {ms(mp99):7.2f} ms")
pred = next(lp for lp in p["placements"][0]["leaders"] if lp["leader"] == leader)
print(f"  predicted infraqual p50 {ms(pred['p50_ns']):7.2f} ms  p99 {ms(pred['p99_ns']):7.2f} ms"
      f"  (error p50 {err(pred['p50_ns'], mp50)}, p99 {err(pred['p99_ns'], mp99)})")

samplers = {n: BucketSampler(*wal[n]) for n in names}
etcd_fed = None
backend_commit = BucketSampler(*backend[leader])
if all(s.ok() for s in samplers.values()) and all(peer_srtt.values()) and request:
    rng = random.Random(SEED)
    quorum_followers = (len(names) // 2 + 1) - 1
    draws = []
    for _ in range(DRAWS):
        leader_sync = samplers[leader].draw(rng)
        arrivals = sorted(peer_srtt[f] + samplers[f].draw(rng) for f in followers)
        commit = max(leader_sync, arrivals[quorum_followers - 1])
        stall = 0.0
        if backend_commit.ok():
            d = backend_commit.draw(rng)
            stall = max(0.0, d - rng.uniform(0, BACKEND_BATCH_INTERVAL + d))
        draws.append((commit + stall) * 1e9 + rng.choice(request))
    draws.sort()
    etcd_fed = (quantile(draws, 0.5), quantile(draws, 0.99))
    print(f"  predicted etcd-fed  p50 {ms(etcd_fed[0]):7.2f} ms  p99 {ms(etcd_fed[1]):7.2f} ms"
          f"  (error p50 {err(etcd_fed[0], mp50)}, p99 {err(etcd_fed[1], mp99)})")
else:
    print("  predicted etcd-fed  (not enough of etcd's own samples)")

rt = p.get("request_time")
if rt:
    print(f"  etcd request time (3 members placed as these, tmpfs, less the quorum round trip, {rt['puts']} puts): "
          f"p50 {ms(rt['p50_ns']):.2f} ms p99 {ms(rt['p99_ns']):.2f} ms")
sync = {s["node"]: s for s in p["member_sync"]}
for n in names:
    s, b = samplers[n], BucketSampler(*backend[n])
    role = "leader" if n == leader else "follower"
    per_sync = wal_grew[n] / s.count if s.count else 0
    line = (f"  {n} ({role}): etcd_disk_wal_fsync_duration_seconds {s.count:.0f} syncs"
            f" ({s.count / puts:.2f}/put, {per_sync:.0f} bytes each)"
            f" mean {1000 * s.mean:.2f} ms"
            f" p50 <= {1000 * s.upper_bound(.5):g} ms p99 <= {1000 * s.upper_bound(.99):g} ms;"
            f" etcd_disk_backend_commit_duration_seconds {b.count:.0f} commits mean {1000 * b.mean:.2f} ms")
    if n in sync:
        line += f"; infraqual fdatasync p50 {ms(sync[n]['p50_ns']):.2f} ms p99 {ms(sync[n]['p99_ns']):.2f} ms"
    print(line)
for f in followers:
    srtt = "none yet" if peer_srtt[f] is None else f"{1000 * peer_srtt[f]:.3f} ms"
    print(f"  etcd_network_peer_round_trip_time_seconds {leader}->{f} (prober SRTT): {srtt}")
fl = p["flags"]
print(f"  infraqual rtt, slowest member pair: {ms(fl['max_rtt_mean_ns']):.2f} ms mean ({'<->'.join(fl['slowest_pair'])});"
      f" flags --heartbeat-interval={fl['heartbeat_interval_ms']} --election-timeout={fl['election_timeout_ms']}")
ok = within(pred["p50_ns"], mp50) and within(pred["p99_ns"], mp99)
fed = ""
if etcd_fed:
    fed = (f" etcd_fed_p50_ns={etcd_fed[0]:.0f} etcd_fed_p99_ns={etcd_fed[1]:.0f}"
           f" etcd_fed_within_target={'yes' if within(etcd_fed[0], mp50) and within(etcd_fed[1], mp99) else 'no'}")
print(f"RESULT {label} measured_p50_ns={mp50} measured_p99_ns={mp99} predicted_p50_ns={pred['p50_ns']} "
      f"predicted_p99_ns={pred['p99_ns']} within_target={'yes' if ok else 'no'}{fed}")
