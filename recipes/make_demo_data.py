#!/usr/bin/env python3
"""Make an embedded demo dataset (synthetic sounds).

    python recipes/make_demo_data.py --out data/demo_us8k [--clips-per-class-per-fold 3] [--seed 0]
    python recipes/make_demo_data.py --layout fsd50k --out data/demo_fsd50k [--n-train 120]
        [--n-val 30] [--n-eval 60] [--sample-rate 44100] [--seed 0]
    python recipes/make_demo_data.py --layout events --out data/demo_events [--max_event_s 1]
        [--snr_low 0] [--snr_high 12] [--clips-per-class-per-fold 3] [--seed 0]

``--layout us8k`` (default): UrbanSound8K's layout, single-label
(``audioattn_sb.data.synthetic.main``). ``--layout fsd50k``: FSD50K's layout, multi-label clips
mixing 1-3 classes (``audioattn_sb.data.synthetic_fsd50k.main``). ``--layout events``: the
UrbanSound8K demo with each clip's event at a known random time in white/pink noise and
``metadata/events.csv`` (strong labels for ``save_attentions.py --events_csv``;
``audioattn_sb.data.noisy.make_demo_events``). ``--layout L --help`` lists the options of each.
"""

import os
import sys

try:
    import audioattn_sb  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

LAYOUTS = ("us8k", "fsd50k", "events")


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    layout, rest, i = "us8k", [], 0
    while i < len(argv):
        a = argv[i]
        if a == "--layout" and i + 1 < len(argv):
            layout, i = argv[i + 1], i + 2
            continue
        if a.startswith("--layout="):
            layout = a.split("=", 1)[1]
        else:
            rest.append(a)
        i += 1
    if layout not in LAYOUTS:
        print(f"error: --layout {layout!r}: valid layouts are {', '.join(LAYOUTS)}",
              file=sys.stderr)
        return 2
    if layout == "fsd50k":
        from audioattn_sb.data.synthetic_fsd50k import main as layout_main
    elif layout == "events":
        from audioattn_sb.data.noisy import demo_events_main as layout_main
    else:
        from audioattn_sb.data.synthetic import main as layout_main
        if any(a in ("-h", "--help") for a in rest):
            print(__doc__)
    return layout_main(rest)


if __name__ == "__main__":
    sys.exit(main())
