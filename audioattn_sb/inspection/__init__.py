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
                             (every layer and head, pooled layers at the finest frame
                             rate, TextGrid intervals), from a run's clips or any file
:mod:`.cli`                  the scripts' entry points (``recipes/save_specs.py``,
                             ``save_attentions.py``, ``plot_attentions.py``,
                             ``save_self_attention.py``, ``plot_self_attention.py``)
:mod:`.files`                atomic binary writes
===========================  ===========================================================

Figures are in :mod:`audioattn_sb.plots`, TextGrid alignments in :mod:`audioattn_sb.textgrid`.

Typical session (after ``recipes/train.py … --output_folder=RUN``; same hparams and overrides)::

    python recipes/save_specs.py HPARAMS [overrides] --output_folder=RUN --attn_num_samples 10
    python recipes/save_attentions.py HPARAMS [overrides] --output_folder=RUN \\
        --attn_fname saved_attentions/x.csv
    python recipes/plot_attentions.py RUN/saved_attentions/x.csv --compare OTHER/….csv
    python recipes/classify.py clip.wav --model RUN --plot clip.png
    python recipes/save_self_attention.py HPARAMS [overrides] --output_folder=RUN \\
        --wav speech.wav --textgrid speech.TextGrid          # Transformer runs
    python recipes/plot_self_attention.py RUN/self_attention/speech.npz

Multi-label runs (FSD50K): ``save_specs`` and ``save_self_attention`` work per 1 s chunk;
``save_attentions`` is single-label only and refuses them with a message.
"""

from audioattn_sb.inspection.attention import clip_attention
from audioattn_sb.inspection.trained_run import TrainedRun, load_trained_run

__all__ = ["TrainedRun", "clip_attention", "load_trained_run"]
