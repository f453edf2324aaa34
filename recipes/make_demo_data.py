#!/usr/bin/env python3
"""Make the embedded demo dataset (UrbanSound8K layout, synthetic sounds).

    python recipes/make_demo_data.py --out data/demo_us8k [--clips-per-class-per-fold 3] [--seed 0]

Thin wrapper around ``audioattn_sb.data.synthetic.main``; ``--help`` lists the classes, the
reproduced UrbanSound8K quirks and every option.
"""

import os
import sys

try:
    from audioattn_sb.data.synthetic import main
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from audioattn_sb.data.synthetic import main

if __name__ == "__main__":
    sys.exit(main())
