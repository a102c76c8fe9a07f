"""cleanlab 2.9's find_label_issues on probabilities written by bench/inspect.ts: prints the flagged rows per filter.

usage: python bench/label_issues_cleanlab.py <probabilities.f32> <labels.i32> <classes>
"""
import json
import sys
import time

import numpy as np
from cleanlab.filter import find_label_issues

probs_file, labels_file, classes = sys.argv[1], sys.argv[2], int(sys.argv[3])
labels = np.fromfile(labels_file, dtype=np.int32).astype(np.int64)
probs = np.fromfile(probs_file, dtype=np.float32).reshape(-1, classes).astype(np.float64)
probs /= probs.sum(axis=1, keepdims=True)
out = {}
for filter_by in ("prune_by_noise_rate", "low_self_confidence"):
    start = time.perf_counter()
    flagged = find_label_issues(labels, probs, filter_by=filter_by)
    out[filter_by] = {"rows": np.flatnonzero(flagged).tolist(), "seconds": time.perf_counter() - start}
print(json.dumps(out))
