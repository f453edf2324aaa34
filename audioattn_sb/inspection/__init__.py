"""Looking inside trained runs: where the attention goes, on which input.

===========================  ===========================================================
module                       what
===========================  ===========================================================
:mod:`.trained_run`          load a run (hparams + best checkpoint, ``weights_only``) and
                             run its Brain's evaluation forward pass; shared by every
                             script and by :mod:`audioattn_sb.inference`
:mod:`.attention`            one clip's attention as a record: μ, σ², support, … in
                             normalised time and seconds; the density per second on a grid
:mod:`.export`               ``save_specs`` (features ``.npz`` + PNG) and ``save_attentions``
                             (summary CSV with R's columns + long density CSV)
:mod:`.self_attention`       Transformer self-attention → STEVE's N×1×M×K×Q ``.npz``
:mod:`.cli`                  the scripts' entry points (``recipes/save_specs.py``,
                             ``save_attentions.py``, ``plot_attentions.py``)
:mod:`.files`                atomic binary writes
===========================  ===========================================================

Figures are in :mod:`audioattn_sb.plots`, TextGrid alignments in :mod:`audioattn_sb.textgrid`.

Typical session (after ``recipes/train.py … --output_folder=RUN``; same hparams and overrides)::

    python recipes/save_specs.py HPARAMS [overrides] --output_folder=RUN --attn_num_samples 10
    python recipes/save_attentions.py HPARAMS [overrides] --output_folder=RUN \\
        --attn_fname saved_attentions/x.csv
    python recipes/plot_attentions.py RUN/saved_attentions/x.csv --compare OTHER/….csv
    python recipes/classify.py clip.wav --model RUN --plot clip.png
"""

from audioattn_sb.inspection.attention import clip_attention
from audioattn_sb.inspection.trained_run import TrainedRun, load_trained_run

__all__ = ["TrainedRun", "clip_attention", "load_trained_run"]
