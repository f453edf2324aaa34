#!/usr/bin/env python3
"""Export a trained Transformer's self-attention, every layer and head, in STEVE's layout (.npz).

Usage (a trained run's folder; or the training command's hparams file and overrides plus
--output_folder=<trained run>):
    python recipes/save_self_attention.py RUN [--data_folder=DIR] [--device=cpu]
    python recipes/save_self_attention.py HPARAMS.yaml [training overrides] --output_folder=RUN
        (--wav FILE [--textgrid FILE.TextGrid] [--word_tier NAME] [--phone_tier NAME]
         | --attn_num_samples N [--attn_split test]) [--attn_out_folder DIR]

    python recipes/save_self_attention.py --hf_model NAME_OR_PATH --wav FILE
        [--textgrid FILE.TextGrid] [--attn_out_folder DIR] [--float16] [--device cpu]

--hf_model: a pretrained Hugging Face speech encoder instead of a trained run (wav2vec 2.0,
HuBERT, WavLM, data2vec-audio, Whisper's encoder; needs pip install -e '.[hf]'): a local folder
written by save_pretrained (model + feature extractor; works offline) or a hub name. Writes
DIR/<wav name>.npz (default DIR results/self_attention/<model>) in the layout below with
spf = 320 (20 ms), hf_model, model_type and clip_mass [layers, heads] (each head's mean share on
the clip's frames; Whisper's encoder always sees 30 s, so its maps are cut to the clip and each
row renormalised), and DIR/<wav name>_summary.csv: per layer and head the attention entropy
(nats), mean attention distance (s), diagonality (mass within +-1 frame) and, with a TextGrid,
the share of attention within the query's own word / phone.
Logic: audioattn_sb/inspection/pretrained.py.

Examples:
    python recipes/save_self_attention.py hparams/urbansound8k_transformer.yaml \\
        --data_folder=data/demo_us8k --output_folder=/tmp/tr --attn_num_samples 5
    python recipes/save_self_attention.py hparams/urbansound8k_transformer.yaml \\
        --data_folder=data/demo_us8k --output_folder=/tmp/tr \\
        --wav ../shared/data/textgrid_sample/arctic_a0001.wav \\
        --textgrid ../shared/data/textgrid_sample/arctic_a0001.TextGrid

Loads the checkpoint the test stage used and writes, atomically, one <DIR>/<id>.npz per clip
(DIR default RUN/self_attention; relative DIR resolves under RUN): --wav: that audio file (any
rate, channels, bit depth; <id> = its name; the whole file as one input, also for runs trained
on 1 s chunks), with the TextGrid's word and phone intervals when given; else the first N
clips of the split (manifest order; N = -1: all; default 10; multi-label runs: 1 s chunks).
Each .npz holds
  attention   float32 [N layers, 1, M heads, T, T] with axes "layer,batch,head,query,key"
              (rows = query frames, columns = key frames, each row summing to 1; STEVE reads
              attention[layer][0][head] this way), T = ceil(n_samples / spf)
  spf         samples per frame (400 = 25 ms at 16 kHz); frame i = samples [i*spf, (i+1)*spf)
  layer_spf   each layer's own samples per frame (pooled layers: 800, 1600; brought to spf
              by repeating their frames, each key's weight split over its block)
  sample_rate, n_samples, duration (s), file_id, source, label, pred, score, max_activation, alpha,
  run_folder, checkpoint, and words_start/words_end/words_label, phones_* (seconds).
Plot them with recipes/plot_self_attention.py. Logic: audioattn_sb/inspection/self_attention.py.
"""

import sys

if len(sys.argv) > 1 and sys.argv[1] in ("-h", "--help"):
    print(__doc__)
    sys.exit(0)

from audioattn_sb.inspection.cli import run_cli, save_self_attention_main  # noqa: E402

if __name__ == "__main__":
    run_cli(save_self_attention_main)
