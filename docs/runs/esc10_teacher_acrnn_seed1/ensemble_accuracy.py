"""Test accuracy of each compact-ACRNN teacher (seeds 0 and 1) and of their ensemble (the mean of
their probabilities) per ESC-10 fold; run from the project root with results/ holding both
teacher experiments:  python docs/runs/esc10_teacher_acrnn_seed1/ensemble_accuracy.py ../shared/data/esc10_us8k"""
import csv
import os
import sys

import numpy as np

from audioattn_sb.distill import find_teacher_run
from audioattn_sb.inference import load_model

data = sys.argv[1]
meta = list(csv.DictReader(open(os.path.join(data, "metadata/UrbanSound8K.csv"))))
rows = []
for k in range(1, 6):
    v = k % 5 + 1
    models = [load_model(find_teacher_run(e, [k], [v]))
              for e in ("results/esc10_teacher_acrnn", "results/esc10_teacher_acrnn_seed1")]
    clips = [m for m in meta if int(m["fold"]) == k]
    acc = np.zeros(3)
    for m in clips:
        path = os.path.join(data, "audio", f"fold{k}", m["slice_file_name"])
        s = [mod.classify_file(path) for mod in models]
        ids = [r.pred_id for r in s] + [int(np.argmax((s[0].scores + s[1].scores) / 2))]
        acc += [int(i == int(m["classID"])) for i in ids]
    rows.append(acc / len(clips))
    print(k, acc / len(clips), flush=True)
print("mean", np.mean(rows, 0))
