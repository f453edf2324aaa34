"""README's result cells against the records they cite.

* A cell written ``accuracy ± std / noisy / mass in event`` (the last two optionally ± their std):
  recomputed from the five seed-0 runs (test folds 1–5) under ``docs/runs/``: each run's
  ``results.json`` (its own weights' accuracy and noisy accuracy, not the weight average's) and
  saved attentions (the mass in event, read as the fold tables read it:
  :func:`audioattn_sb.folds.collect_results`).
* A cell written ``mAP ± std (n seeds)``: the eval mAP (own weights) of seeds 0 … n − 1 of
  ``docs/runs/EXP/VARIANT/seed*/results.json`` (fsd50k_mini).

A cell's records are the ``docs/runs/EXP/VARIANT/`` link of its row, or the ``docs/runs/EXP/``
link of its column's header with the row's first cell as the variant. A printed number may
differ from the recomputed one by rounding only (± 0.0005)."""

import re
import statistics

import pytest

from audioattn_sb.folds import collect_results
from audioattn_sb.results import RunResults
from tests.conftest import REPO_ROOT

README = REPO_ROOT / "README.md"
RUNS = REPO_ROOT / "docs" / "runs"
CELL = re.compile(r"^\**(\d\.\d{3})\** ± (\d\.\d{3})\** / \**(\d\.\d{3})\**(?: ± (\d\.\d{3}))? / "
                  r"(\d\.\d{3}|–)(?: ± (\d\.\d{3}))?$")
MAP_CELL = re.compile(r"^\**(\d\.\d{3}) ± (\d\.\d{3})\** \((\d+) seeds\)$")
ROW_LINK = re.compile(r"\(docs/runs/([\w.-]+)/([\w.-]+)/\)")
HEAD_LINK = re.compile(r"\(docs/runs/([\w.-]+)/\)")
ROUNDING = 0.0005 + 1e-9


def _cells(row):
    return [c.strip() for c in row.strip().strip("|").split("|")]


def readme_result_cells(text):
    """(experiment, variant, cell text, row) for each result cell of the README's tables."""
    found = []
    header = None
    for line in text.splitlines():
        if not line.startswith("|"):
            header = None
            continue
        if header is None:
            header = _cells(line)
            continue
        if set(line) <= set("|-: "):
            continue
        cells = _cells(line)
        row_link = ROW_LINK.search(line)
        for i, cell in enumerate(cells):
            if not (CELL.match(cell) or MAP_CELL.match(cell)):
                continue
            if row_link:
                exp, variant = row_link.groups()
            else:
                head = HEAD_LINK.search(header[i]) if i < len(header) else None
                assert head, f"README: no records for the cell {cell!r} of the row {line!r}"
                exp, variant = head[1], cells[0].strip("`")
            found.append((exp, variant, cell, line))
    return found


def _records(exp, variant, folders):
    """The results.json paths of docs/runs/EXP/VARIANT/<folder> for each folder; an assertion
    error naming the missing ones."""
    paths = [RUNS / exp / variant / f / "results.json" for f in folders]
    missing = [str(p.parent) for p in paths if not p.is_file()]
    assert not missing, f"README cites {exp}/{variant}, but these records are missing: {missing}"
    return [str(p) for p in paths]


def recompute(exp, variant):
    """{name: (mean, sample std)} of ``accuracy``, ``noisy`` and ``mass in event`` (the last
    absent without events JSON) over the five seed-0 runs of docs/runs/EXP/VARIANT."""
    runs = collect_results(_records(exp, variant, [f"test{k}_valid{k % 5 + 1}/seed0"
                                                   for k in range(1, 6)]))
    values = {"accuracy": [r.own("test_accuracy") for r in runs],
              "noisy": [r.own("test_noisy_accuracy") for r in runs]}
    if all(r.localisation for r in runs):
        values["mass in event"] = [r.localisation["mass_in_event"] for r in runs]
    return {k: (statistics.fmean(v), statistics.stdev(v)) for k, v in values.items()}


def recompute_map(exp, variant, n_seeds):
    """(mean, sample std) of the eval mAP of seeds 0 … n − 1 of docs/runs/EXP/VARIANT."""
    values = [RunResults.load(p).own("test_mAP")
              for p in _records(exp, variant, [f"seed{k}" for k in range(n_seeds)])]
    return statistics.fmean(values), statistics.stdev(values)


def check_cell(exp, variant, cell):
    """The mismatches between a printed cell and its records (an empty list: it matches)."""
    if MAP_CELL.match(cell):
        mean, sd, n = MAP_CELL.match(cell).groups()
        want = recompute_map(exp, variant, int(n))
        return [f"mAP {'std' if i else 'mean'} printed {text}, records give {want[i]:.4f}"
                for i, text in enumerate((mean, sd)) if abs(float(text) - want[i]) > ROUNDING]
    acc, acc_sd, noisy, noisy_sd, mass, mass_sd = CELL.match(cell).groups()
    want = recompute(exp, variant)
    printed = [("accuracy", 0, acc), ("accuracy", 1, acc_sd), ("noisy", 0, noisy),
               ("noisy", 1, noisy_sd)]
    if mass != "–":
        if "mass in event" not in want:
            return [f"mass in event printed {mass}, but the records hold no events JSON"]
        printed += [("mass in event", 0, mass), ("mass in event", 1, mass_sd)]
    return [f"{name} {'std' if i else 'mean'} printed {text}, records give {want[name][i]:.4f}"
            for name, i, text in printed
            if text is not None and abs(float(text) - want[name][i]) > ROUNDING]


def test_every_readme_result_cell_matches_its_records():
    cells = readme_result_cells(README.read_text(encoding="utf-8"))
    # the compact ACRNN's 8 families; the compact Transformer's 4 configurations, 8 distilled
    # families and 2 patient ones; its 2 fsd50k_mini rows
    assert len(cells) >= 24, f"only {len(cells)} result cells found: the table format changed?"
    failures = [f"{exp}/{variant}: {p}\n    in {row.strip()}"
                for exp, variant, cell, row in cells for p in check_cell(exp, variant, cell)]
    assert not failures, "README cells that do not match their records:\n" + "\n".join(failures)


def test_a_miscopied_cell_is_caught():
    """The check fails on a README cell one clip off its records, and on a mass in event that
    has no events JSON behind it (the paper configuration's runs were not localised)."""
    cells = readme_result_cells(README.read_text(encoding="utf-8"))
    exp, variant, cell, _ = next(c for c in cells
                                 if c[0] == "esc10_tcompact_distil_t3_d128h4ff768"
                                 and c[1] == "discrete-softmax")
    acc = float(CELL.match(cell)[1])
    assert not check_cell(exp, variant, cell)
    wrong = f"{acc + 0.0125:.3f}" + cell[len(f"{acc:.3f}"):]
    assert check_cell(exp, variant, wrong)
    paper = next(c for c in cells if c[0] == "esc10_tpaper")
    assert paper[2].endswith("/ –")
    with pytest.raises(AssertionError, match="records are missing"):
        recompute("esc10_tpaper", "no-such-variant")
    assert check_cell(paper[0], paper[1], paper[2][:-1] + "0.500")
    fsd = next(c for c in cells if c[0] == "fsd50k_mini_tcompact_distil_mix1_e120_d128h4ff768")
    assert not check_cell(*fsd[:3])
    mean = MAP_CELL.match(fsd[2])[1]
    assert check_cell(fsd[0], fsd[1], fsd[2].replace(mean, f"{float(mean) + 0.002:.3f}", 1))
