"The adapters on the real datasets: run in CI (CI=true), skipped with the reason elsewhere."
import numpy as np
from conftest import real_dataset
from defect_nb.data import load_table, make_split, summarize, segment_dls, classify_dls, MaskReader


def test_neu_det_voc(tmp_path, monkeypatch):
    monkeypatch.setenv('DEFECT_NB_DATA', str(tmp_path))            # the shared folder is read-only: split goes here
    t = load_table(real_dataset('neu-det'))
    assert t.attrs['source'] == 'voc' and len(t) == 1800
    assert t.label.value_counts().to_dict() == {c: 300 for c in t.attrs['classes']}
    s = make_split(t, seed=42)
    assert str(tmp_path) in s.attrs['split_file']
    assert summarize(s).loc['total', 'test'] == 360
    m = MaskReader(200)(s.iloc[0].to_dict())
    assert m.shape == (200, 200) and m.max() == 1                 # box mask


def test_magnetic_tile_masks(tmp_path, monkeypatch):
    monkeypatch.setenv('DEFECT_NB_DATA', str(tmp_path))
    t = load_table(real_dataset('magnetic-tile'))
    assert t.attrs['source'] == 'masks' and len(t) == 1344
    assert t.label.value_counts().to_dict() == {'Free': 952, 'Blowhole': 115, 'Uneven': 103, 'Break': 85, 'Crack': 57, 'Fray': 32}
    s = make_split(t[t.label == 'Crack'], seed=1, save=False)
    x, y = segment_dls(s, size=96, bs=4).one_batch()
    assert set(y.unique().tolist()) == {0, 1}                      # soft masks binarised


def test_elpv():
    t = make_split(load_table('elpv', verbose=False), seed=42, test_pct=.25, valid_pct=.15, save=False)
    assert len(t) == 2624
    test = t[t.split == 'test']
    # stratified by probability × type: each stratum keeps its share in the test split
    share = test.groupby(['proba', 'type']).size() / t.groupby(['proba', 'type']).size()
    assert share.between(.2, .3).all(), share
    x, y = classify_dls(t, size=64, bs=4).one_batch()
    assert tuple(x.shape) == (4, 3, 64, 64)
