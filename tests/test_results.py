"""results.json's one schema (audioattn_sb.results.RunResults) and the test evaluations that
return their statistics (ClipBrain.evaluate_split, recipe.run_tests): the round trip, older
files without a schema version, the noisy and own-weights tests leaving the run's test
statistics alone, and no swap of Brain attributes left in the recipe."""

import ast
import glob
import json
import os

import pytest
import torch

from audioattn_sb.results import SCHEMA_VERSION, RunResults, as_run_results

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OLD_RUN = os.path.join(REPO, "docs", "runs", "esc10_tcompact_conv", "discrete-softmax",
                       "test1_valid2", "seed0", "results.json")


def _single_label_run():
    return RunResults(
        experiment_name="e", hparams_file="/h.yaml", overrides="seed: 1",
        overrides_dict={"seed": 1}, command="train.py h.yaml --seed=1", data_folder="data/x",
        folds={"train": [3, 4], "valid": [2], "test": [1]},
        attention={"domain": "discrete", "max_activation": "softmax", "alpha": 1.0,
                   "tag": "discrete-softmax"},
        seed=1, number_of_epochs=2, epochs_completed=2, stopped_early=False, augment=True,
        mixup_alpha=0.0, average_epochs=2.0, tested_epoch=2, best_epoch=2, n_parameters=10,
        train_seconds_this_process=1.5, train_epoch_seconds=[0.7, 0.8], class_names=["a", "b"],
        figures={"checkpoint_selected_by": "min valid error", "n_clips": {"test": 4},
                 "test_accuracy": 0.75, "test_error": 0.25, "test_loss": 0.5,
                 "test_per_class_accuracy": {"a": 1.0, "b": 0.5},
                 "test_confusion_matrix": [[2, 0], [1, 1]], "valid_error_last_epoch": None,
                 "items_per_process": {"train": [8], "valid": [4], "test": [4]}},
        noisy_test={"noisy_test_folder": "/noisy", "test_noisy_accuracy": 0.5,
                    "test_noisy_loss": 0.9, "test_noisy_per_class_accuracy": {"a": 0.5, "b": 0.5},
                    "test_noisy_confusion_matrix": [[1, 1], [1, 1]]},
        without_weight_average={"test_loss": 0.6, "test_error": 0.5, "test_accuracy": 0.5,
                                "test_noisy_accuracy": 0.25, "test_noisy_loss": 1.1},
        versions={"python": "3.11"}, machine={"cpu": "X"}, code_commit="abc")


def test_round_trip_through_the_file_keeps_every_key_in_order(tmp_path):
    run = _single_label_run()
    path = run.write(tmp_path)  # a folder: <folder>/results.json
    assert path == str(tmp_path / "results.json")
    data = json.loads((tmp_path / "results.json").read_text())
    assert data == run.to_dict() and list(data) == list(run.to_dict())
    assert list(data)[:2] == ["schema_version", "experiment_name"]
    assert data["schema_version"] == SCHEMA_VERSION == 2
    # the flat schema-1 layout: the Brain's figures, then the noisy test, then the own weights
    keys = list(data)
    assert keys.index("class_names") < keys.index("test_accuracy") < keys.index(
        "noisy_test_folder") < keys.index("without_weight_average") < keys.index("versions")
    back = RunResults.load(path)
    assert back == run and back.path == path
    assert back.to_json() == (tmp_path / "results.json").read_text()
    assert back.metric == "accuracy" and back.test_score == 0.75
    assert back.test_noisy_accuracy == 0.5 and back.test_folds == [1]
    assert back.tested == "min valid error, weights averaged over 2 epochs"


def test_multilabel_and_foldless_runs_round_trip():
    run = RunResults.from_dict({"schema_version": 2, "experiment_name": "f",
                                "attention": {"tag": "discrete-softmax"},
                                "splits": {"test": "eval.csv"}, "test_mAP": 0.3,
                                "test_dprime": 1.2, "test_mAP_chance": None})
    assert run.folds is None and "folds" not in run.to_dict()
    assert "without_weight_average" not in run.to_dict()
    assert run.metric == "mAP" and run.test_score == 0.3 and run.test_accuracy is None
    assert RunResults.from_dict(run.to_dict()) == run
    assert run.get("test_mAP_chance", "none") == "none" and not run.has("test_accuracy")


def test_an_older_file_without_schema_version_loads_as_schema_1():
    raw = json.loads(open(OLD_RUN, encoding="utf-8").read())
    assert "schema_version" not in raw
    run = RunResults.load(OLD_RUN)
    assert run.schema_version == 1
    assert run.test_accuracy == raw["test_accuracy"] and run.attention_tag == "discrete-softmax"
    assert run.test_folds == raw["folds"]["test"] == [1]
    out = run.to_dict()
    # every key of the old file, same value, same order (keys it lacked come back as null)
    assert [k for k in out if k in raw] == list(raw)
    assert all(out[k] == raw[k] for k in raw)
    assert all(out[k] is None for k in out if k not in raw and k != "schema_version")


def test_every_shipped_run_loads():
    paths = glob.glob(os.path.join(REPO, "docs", "runs", "**", "results.json"), recursive=True)
    assert paths
    for path in paths:
        run = RunResults.load(path)
        raw = json.loads(open(path, encoding="utf-8").read())
        assert {k: v for k, v in run.to_dict().items() if k in raw} == raw, path


def test_a_newer_schema_is_refused_and_dicts_convert():
    with pytest.raises(ValueError, match="newer"):
        RunResults.from_dict({"schema_version": SCHEMA_VERSION + 1})
    run = as_run_results({"test_accuracy": 0.5})
    assert as_run_results(run) is run and run.test_accuracy == 0.5


# --------------------------------------------------------------------------- evaluations
class _Model(torch.nn.Module):
    """Mean over time → linear → log-softmax; the attention: uniform weights."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(3, 2)

    def forward(self, x, lens):
        from audioattn_sb.attention.output import Attention

        w = torch.full(x.shape[:2], 1.0 / x.shape[1])
        return torch.log_softmax(self.lin(x.mean(dim=1)), dim=-1), Attention(weights=w)


class _Pass(torch.nn.Module):
    def forward(self, x, lens=None):
        return x


def _dataset(seed, n=6):
    import speechbrain as sb

    g = torch.Generator().manual_seed(seed)
    data = {f"c{i}": {"x": torch.randn(5, 3, generator=g), "y": i % 2} for i in range(n)}
    ds = sb.dataio.dataset.DynamicItemDataset(data)

    @sb.utils.data_pipeline.takes("x", "y")
    @sb.utils.data_pipeline.provides("feats", "label")
    def pipeline(x, y):
        yield x
        yield torch.tensor([y])

    ds.add_dynamic_item(pipeline)
    ds.set_output_keys(["id", "feats", "label"])
    return ds


def _brain(tmp_path):
    """A ClassificationBrain whose weight average (two updates apart) differs from its own
    weights."""
    import speechbrain as sb

    from audioattn_sb.brains.classification import ClassificationBrain
    from audioattn_sb.training import WeightAverage

    torch.manual_seed(0)
    model = _Model()
    average = WeightAverage(model, epochs=2.0)
    average.update()
    with torch.no_grad():
        model.lin.weight[0].add_(1.0)  # one class's scores only (log-softmax ignores a shift
        model.lin.bias[1].sub_(0.5)    # of both)
    average.update()
    hparams = {"epoch_counter": sb.utils.epoch_loop.EpochCounter(limit=1), "n_classes": 2,
               "class_names": ["a", "b"], "hop_samples": 160, "weight_average": average,
               "train_logger": sb.utils.train_logger.FileTrainLogger(str(tmp_path / "log.txt")),
               "dataloader_options": {"batch_size": 4}}
    return ClassificationBrain(modules={"compute_features": _Pass(), "mean_var_norm": _Pass(),
                                        "model": model},
                               opt_class=lambda p: torch.optim.SGD(p, lr=0.1), hparams=hparams,
                               run_opts={"device": "cpu", "noprogressbar": True})


def _loss(model, ds):
    """The item-mean NLL of ``ds`` under ``model``'s current weights."""
    xs = torch.stack([ds[i]["feats"] for i in range(len(ds))])
    ys = torch.cat([ds[i]["label"] for i in range(len(ds))])
    with torch.no_grad():
        return float(torch.nn.functional.nll_loss(model(xs, None)[0], ys))


def test_evaluations_return_their_statistics_and_leave_the_run_test_alone(tmp_path):
    brain = _brain(tmp_path)
    model, average = brain.modules.model, brain.hparams.weight_average
    test_set, noisy_set = _dataset(1), _dataset(2)
    own_weights = {k: v.clone() for k, v in model.state_dict().items()}
    own_loss = _loss(model, test_set)
    average.apply()
    avg_loss, avg_noisy_loss = _loss(model, test_set), _loss(model, noisy_set)
    average.restore()
    assert abs(own_loss - avg_loss) > 1e-3  # the average is not the own weights

    clean = brain.evaluate_split(test_set, {"batch_size": 4}, as_test=True)
    assert brain.test_stats is clean
    assert clean["loss"] == pytest.approx(avg_loss, rel=1e-5)  # the averaged weights
    own = brain.evaluate_split(test_set, {"batch_size": 4}, use_weight_average=False)
    assert own["loss"] == pytest.approx(own_loss, rel=1e-5)  # the checkpoint's own weights
    noisy = brain.evaluate_split(noisy_set, {"batch_size": 4})
    assert noisy["loss"] == pytest.approx(avg_noisy_loss, rel=1e-5)
    # the run's test statistics are still the clean test's, and the model has its own weights
    assert brain.test_stats is clean and brain.test_stats["loss"] == pytest.approx(avg_loss)
    assert brain.items_per_process()["test"] == clean["items_per_process"]
    assert all(torch.equal(v, own_weights[k]) for k, v in model.state_dict().items())
    # a plain evaluate is still the run's test (SpeechBrain's API, as before)
    brain.evaluate(noisy_set, test_loader_kwargs={"batch_size": 4})
    assert brain.test_stats["loss"] == pytest.approx(avg_noisy_loss, rel=1e-5)


def test_run_tests_returns_each_test_and_results_hold_them(tmp_path):
    """recipe.run_tests: the clean test is the Brain's test_stats; the own weights' test is
    returned (not swapped in) and becomes results.json's without_weight_average; the noisy
    test returns its statistics without touching test_stats."""
    from audioattn_sb import recipe

    brain = _brain(tmp_path)
    test_set = _dataset(1)
    hparams = {"dataloader_options": {"batch_size": 4}, "noisy_test_folder": None}
    tests = recipe.run_tests(hparams, brain, test_set, corpus=None)
    assert brain.test_stats is tests.clean and tests.noisy is None
    assert tests.own["loss"] != pytest.approx(tests.clean["loss"], rel=1e-3)
    entries = recipe.without_weight_average_entries(brain, tests)["without_weight_average"]
    assert entries == {"test_loss": tests.own["loss"], "test_error": tests.own["error"],
                       "test_accuracy": tests.own["accuracy"]}
    hparams["noisy_test_folder"] = "/somewhere/noisy"
    tests.noisy_folder = "/somewhere/noisy"
    tests.noisy = recipe.evaluate_noisy_test(hparams, brain, _dataset(2), tests.clean)
    assert brain.test_stats is tests.clean
    assert recipe.noisy_test_entries(tests)["test_noisy_loss"] == tests.noisy["loss"]
    figures = brain.results({}, tests.clean)
    assert figures["test_loss"] == tests.clean["loss"]


# --------------------------------------------------------------------------- no swaps
SWAPPED = ("test_stats", "use_weight_average")


def attribute_swaps(source, names=SWAPPED):
    """``[(line, "obj.attr")]``: assignments (plain, augmented, annotated, tuple targets) and
    ``setattr`` calls that set an attribute named in ``names`` on any object."""
    found = []

    def targets(node):
        if isinstance(node, (ast.Tuple, ast.List)):
            for elt in node.elts:
                yield from targets(elt)
        elif isinstance(node, ast.Starred):
            yield from targets(node.value)
        else:
            yield node

    for node in ast.walk(ast.parse(source)):
        tgts = []
        if isinstance(node, ast.Assign):
            tgts = [t for target in node.targets for t in targets(target)]
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            tgts = list(targets(node.target))
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id == "setattr" and len(node.args) >= 2
              and isinstance(node.args[1], ast.Constant) and node.args[1].value in names):
            found.append((node.lineno, f"setattr {node.args[1].value}"))
        for t in tgts:
            if isinstance(t, ast.Attribute) and t.attr in names:
                found.append((node.lineno, f"{ast.unparse(t.value)}.{t.attr}"))
    return sorted(found)


def test_the_swap_check_sees_each_form():
    snippet = ("noisy, brain.test_stats = brain.test_stats, clean\n"
               "brain.use_weight_average = False\n"
               "setattr(brain, 'use_weight_average', True)\n"
               "x.test_stats += 1\n"
               "stats = brain.test_stats\n"  # a read is fine
               "self.other = 1\n")
    assert attribute_swaps(snippet) == [(1, "brain.test_stats"), (2, "brain.use_weight_average"),
                                        (3, "setattr use_weight_average"), (4, "x.test_stats")]


@pytest.mark.parametrize("path", ["audioattn_sb/recipe.py", "recipes/train.py"])
def test_the_recipe_swaps_no_brain_attribute(path):
    source = open(os.path.join(REPO, path), encoding="utf-8").read()
    assert attribute_swaps(source) == []
