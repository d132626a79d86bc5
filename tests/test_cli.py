"The `defect-nb` console script, run as a user runs it."
import json
import pandas as pd, pytest


def test_help_lists_verbs_and_examples(cli):
    r = cli('--help')
    assert r.returncode == 0 and 'synth' in r.stdout and 'data' in r.stdout
    for v in ('synth', 'data'):
        h = cli(v, '--help')
        assert h.returncode == 0 and 'examples:' in h.stdout and f'defect-nb {v}' in h.stdout


def test_synth_then_data(cli, tmp_path):
    r = cli('synth', '--out', 'ds', '--n-per-class', '4', '--size', '64', '--seed', '3')
    assert r.returncode == 0, r.stderr
    assert 'scratches' in r.stdout and (tmp_path / 'ds' / 'labels.csv').exists()
    assert len(list((tmp_path / 'ds' / 'images').rglob('*.png'))) == 28
    r = cli('data', '--path', 'ds', '--seed', '5', '--json')
    assert r.returncode == 0, r.stderr
    counts = json.loads(r.stdout)
    assert counts['total']['total'] == 28 and counts['ok'] == {'train': 2, 'valid': 1, 'test': 1, 'total': 4}
    split = tmp_path / 'ds' / 'split_seed5.csv'
    before = split.read_bytes()
    assert cli('data', '--path', 'ds', '--seed', '5', '--valid-pct', '0.5').returncode == 0
    assert split.read_bytes() == before                                   # an existing split is never rewritten


def test_synth_rerun_is_reused_and_never_overwritten(cli, tmp_path):
    assert cli('synth', '--out', 'ds', '--n-per-class', '2', '--size', '48').returncode == 0
    stamp = (tmp_path / 'ds' / 'labels.csv').stat().st_mtime_ns
    assert cli('synth', '--out', 'ds', '--n-per-class', '2', '--size', '48').returncode == 0
    assert (tmp_path / 'ds' / 'labels.csv').stat().st_mtime_ns == stamp
    r = cli('synth', '--out', 'ds', '--n-per-class', '3', '--size', '48')
    assert r.returncode == 2 and '--overwrite' in r.stderr and r.stderr.count('\n') == 1
    assert len(pd.read_csv(tmp_path / 'ds' / 'labels.csv')) == 14


@pytest.mark.parametrize('args, words', [
    (['data', '--path', 'missing'], 'does not exist'),
    (['data'], 'give a dataset path'),
    (['data', '--path', 'ds', '--valid-pct', '0.7', '--test-pct', '0.5'], 'leave images to train on'),
    (['synth', '--out', 'x', '--n-per-class', '0'], 'at least 1'),
    (['synth', '--out', 'x', '--size', '8'], 'at least 32'),
])
def test_bad_input_is_one_line(cli, tmp_path, args, words):
    if 'ds' in args: assert cli('synth', '--out', 'ds', '--n-per-class', '2', '--size', '48').returncode == 0
    r = cli(*args)
    assert r.returncode == 2, r
    assert words in r.stderr and r.stderr.count('\n') == 1 and 'Traceback' not in r.stderr


def test_json_error(cli):
    r = cli('data', '--path', 'missing', '--json')
    assert r.returncode == 2 and json.loads(r.stdout)['error'] == 'DataError'


def test_unknown_verb_is_usage_error(cli):
    r = cli('fly')
    assert r.returncode == 2 and 'invalid choice' in r.stderr


def test_demo_end_to_end_and_rerun(cli, tmp_path):
    args = ['demo', '--out', 'd', '--n-per-class', '4', '--size', '64', '--seg-size', '64', '--seg-epochs', '1', '--seg-n', '3', '--json']
    r = cli(*args, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(r.stdout)
    assert 0 <= res['classifier_accuracy'] <= 1 and 0 <= res['segmenter_dice'] <= 1
    assert (tmp_path / 'd' / 'bundles' / 'classifier' / 'model.int8.onnx').exists()
    assert res['example']['classifier']['prediction'] and 'defect_area' in res['example']['segmenter']
    stamp = (tmp_path / 'd' / 'runs' / 'classifier' / 'epoch_01.pth').stat().st_mtime_ns
    r = cli(*args, timeout=600)
    assert r.returncode == 0 and 'classifier training' in json.loads(r.stdout)['steps']
    assert (tmp_path / 'd' / 'runs' / 'classifier' / 'epoch_01.pth').stat().st_mtime_ns == stamp     # reused, not retrained


def test_demo_reports_progress_at_every_step(cli):
    "A person watching `defect-nb demo` sees every step start and end with the time so far, an estimate of what is left, and the U-Net's epochs."
    r = cli('demo', '--out', 'd', '--n-per-class', '4', '--size', '64', '--seg-size', '64', '--seg-epochs', '2', '--seg-n', '3', timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    out = r.stdout + r.stderr
    steps = ['synthetic data', 'classifier training', 'U-Net training', 'classifier evaluation', 'U-Net evaluation', 'classifier export', 'segmenter export']
    import re
    for s in steps:
        assert re.search(rf"\[\s*[\d.]+ s\] {s}\b", out), f"no start line for {s!r}"
        assert re.search(rf"\[\s*[\d.]+ s\] {s} done \([\d.]+ s\)", out), f"no end line for {s!r}"
    assert re.search(r"about \d+ s left", out), 'no estimate of the time left'
    assert re.search(r"^\s*\d+\s+[\d.]+\s+[\d.]+", out, re.M), "no per-epoch line from the U-Net's training"
    assert 'demo finished in' in out and 'test accuracy' in out and 'test Dice' in out
