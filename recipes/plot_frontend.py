#!/usr/bin/env python3
"""Plot a raw-waveform Transformer run's learned front end as a filterbank (Verma & Berger 2021).

Usage:
    python recipes/plot_frontend.py RUN [--out PNG] [--nfft 2048]

RUN is a trained run folder of a raw-waveform Transformer yaml (urbansound8k_transformer*.yaml,
fsd50k_transformer*.yaml; dense patches or the convolutional stem). Writes one PNG (default
<RUN>/frontend/frontend.png) with a row for the trained model and a row for the same model at
initialisation (the run's yaml rebuilt with its own seed): the first layer's filters as waveforms,
their power responses sorted by peak frequency (dB), and peak frequency against the -3 dB
bandwidth; and a CSV beside it (model, filter, peak_hz, bandwidth_hz). For the stem, each
(cosine, sine) pair is one filter (its energy response). Logic: audioattn_sb.inspection.frontend.
"""

import sys

if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] in ("-h", "--help"):
    print(__doc__)
    sys.exit(0)

from audioattn_sb.inspection.cli import run_cli  # noqa: E402
from audioattn_sb.inspection.frontend import main  # noqa: E402

if __name__ == "__main__":
    run_cli(main)
