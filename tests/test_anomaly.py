"Good parts only (`defect_nb.anomaly`): the coreset, the run, the bundle and its Predictor, the CLI, the benchmark's smoke run."
import json, os, subprocess, sys
import numpy as np, pandas as pd
import pytest
from conftest import ROOT


@pytest.fixture(scope='module')
def anomaly_run(tmp_path_factory):
    "A tiny anomaly run and its bundle: synthetic 96 px images (half of them ok), 64 px input, a quarter of the patches kept."
    from defect_nb.synth import synthesize
    from defect_nb.data import load_table, make_split
    from defect_nb.anomaly import train_anomaly, export_anomaly
    d = tmp_path_factory.mktemp('anomaly')
    synthesize(d / 'syn', 4, 96, seed=0, ok_share=0.5, progress=False)
    table = make_split(load_table(d / 'syn'), 42)
    run = train_anomaly(table, 'ok', out=d / 'run', size=64, coreset=0.25, bs=8, progress=False)
    meta = export_anomaly(run.path, d / 'bundle', speed_n=2)
    return d, run, meta


def test_coreset_deterministic_and_never_larger_than_asked():
    from defect_nb.anomaly import greedy_coreset, coreset_size
    X = np.random.default_rng(0).normal(size=(500, 40)).astype(np.float32)
    a, b, c = greedy_coreset(X, 37, seed=3), greedy_coreset(X, 37, seed=3), greedy_coreset(X, 37, seed=4)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert len(a) == 37 and len(set(a.tolist())) == 37 and a.max() < 500
    assert len(greedy_coreset(X, 10_000)) == 500                                  # never more rows than there are
    assert len(greedy_coreset(X, 12, proj_dim=8)) == 12
    for want, n in [(0.01, 10_000), (0.3, 7), (250, 100), (1, 5)]:
        assert coreset_size(want, n) <= n


def test_coreset_is_exact_greedy_k_center():
    "The numpy loop picks what a plain greedy k-center on the projected rows picks (each pick the row furthest from those picked)."
    from defect_nb.anomaly import greedy_coreset
    X = np.random.default_rng(1).normal(size=(300, 16)).astype(np.float32)
    got = greedy_coreset(X, 25, seed=5, proj_dim=32)                               # 16 ≤ 32 dims: no projection, distances exact
    first = int(np.random.default_rng(5).integers(300)); want = [first]
    d = ((X - X[first]) ** 2).sum(1)
    for _ in range(24):
        i = int(d.argmax()); want.append(i); d = np.minimum(d, ((X - X[i]) ** 2).sum(1))
    assert got.tolist() == want


def test_patch_features_onnx_matches_torch_and_centering(synth_small):
    "onnxruntime (features.FeatureExtractor's engine) and PyTorch give the same patch features; centred features have zero spatial mean."
    from defect_nb.anomaly import PatchFeatures, patch_features
    from defect_nb.data import load_table
    paths = [str(p) for p in load_table(synth_small).image[:3]]
    m = PatchFeatures(center=True)
    a = patch_features(m, paths, 64, bs=2, progress=False, engine='torch')
    b = patch_features(m, paths, 64, bs=2, progress=False, engine='onnx')
    assert a.shape == (3, 152, 8, 8) and np.abs(a - b).max() < 1e-3
    assert np.abs(a.mean((2, 3))).max() < 1e-4
    plain = patch_features(PatchFeatures(), paths, 64, progress=False, engine='torch')
    assert np.allclose(plain - plain.mean((2, 3), keepdims=True), a, atol=1e-4)


def test_global_descriptor_onnx_matches_torch(synth_small):
    "With a global stage the extractor has two outputs, patches and the stage's pooled mean and std, the same in onnxruntime and PyTorch."
    import torch
    from defect_nb.anomaly import PatchFeatures, patch_features
    from defect_nb.data import load_table
    paths = [str(p) for p in load_table(synth_small).image[:3]]
    m = PatchFeatures(center=True, global_stage=4)
    (za, ga), (zb, gb) = [patch_features(m, paths, 64, bs=2, progress=False, engine=e) for e in ('torch', 'onnx')]
    assert za.shape == (3, 152, 8, 8) and ga.shape == (3, m.global_dim) == (3, 640)
    assert np.abs(za - zb).max() < 1e-3 and np.abs(ga - gb).max() < 1e-3 * max(1, np.abs(ga).max())
    assert np.allclose(za, patch_features(PatchFeatures(center=True), paths, 64, progress=False, engine='torch'), atol=1e-5)   # the patches are unchanged
    with torch.no_grad(): f = m.body(torch.zeros(1, 3, 64, 64))[-1]
    assert ga.shape[1] == 2 * f.shape[1]


def test_global_term_adds_to_the_image_score(anomaly_run):
    "The run keeps the good parts' Gaussian and the weight that puts the global distance in map units; the score is max(map max + weight·(g − centre), 0), the map stays the patches'."
    from defect_nb.inference import anomaly_score, global_distance
    from defect_nb.anomaly import load_anomaly, _maps, run_maps
    from defect_nb.train import run_table
    d, run, meta = anomaly_run
    g = run.config['global']
    assert g['stage'] == 4 and g['weight'] > 0 and g['dim'] == 640 and meta['anomaly']['global']['weight'] == g['weight']
    mean, prec = np.load(run.path / g['mean']), np.load(run.path / g['precision'])
    assert mean.shape == (640,) and prec.shape == (640, 640) and np.allclose(prec, prec.T, atol=1e-3 * np.abs(prec).max())
    assert global_distance(mean[None], mean, prec)[0] == pytest.approx(0, abs=1e-3)
    maps = np.zeros((3, 4, 4), np.float32); maps[:, 1, 2] = 1.0
    assert np.allclose(anomaly_score(maps), 1) and np.allclose(anomaly_score(maps, None, 0.5, 1.0), 1)
    assert np.allclose(anomaly_score(maps, np.array([3., 1., -10.]), 0.5, 1.0), [2., 1., 0.])    # floored at 0
    model, index, cfg = load_anomaly(run.path)
    rows = run_table(run.path, 'test').image[:3].tolist()
    patch, gd = _maps(model, index, rows, 64, cfg['sigma'], 8, False, '', 'torch')
    m, s = run_maps(run.path, rows, scores=True)
    assert np.allclose(m, patch) and np.allclose(s, np.maximum(patch.reshape(3, -1).max(1) + g['weight'] * (gd - g['centre']), 0), atol=1e-5)
    assert not np.allclose(s, patch.reshape(3, -1).max(1))                          # the global term moved the scores


def test_unknown_normal_class_is_a_clear_error(synth_small, tmp_path):
    from defect_nb.anomaly import train_anomaly, AnomalyError
    with pytest.raises(AnomalyError) as e: train_anomaly(synth_small, 'good', out=tmp_path / 'r', size=64, progress=False)
    msg = str(e.value)
    assert isinstance(e.value, ValueError) and "'good' is not in the data" in msg and "'ok'" in msg and "'scratches'" in msg
    assert not (tmp_path / 'r').exists()                                          # refused before any run folder is made


def test_run_folder_and_threshold(anomaly_run):
    d, run, _ = anomaly_run
    cfg = json.loads((run.path / 'config.json').read_text())
    bank = np.load(run.path / 'bank.npy', allow_pickle=False)
    assert cfg['task'] == 'anomaly' and bank.shape == (cfg['bank_size'], cfg['dim']) and cfg['bank_size'] <= cfg['n_patches'] // 4 + 1
    split = json.loads((run.path / 'threshold.json').read_text())
    assert 0 < split['threshold'] < 1 and split['n_valid'] > 0


def test_predictor_map_matches_pytorch(anomaly_run):
    from defect_nb.anomaly import run_maps
    from defect_nb.inference import Predictor, normalise, to_json
    from defect_nb.train import run_table
    from defect_nb.core import load_image
    d, run, meta = anomaly_run
    rows = run_table(run.path, 'test').image[:4].tolist()
    raw, raw_s = run_maps(run.path, rows, scores=True)
    ref, ref_s = normalise(raw, run.config['score_scale']), normalise(raw_s, run.config['score_scale'])
    import importlib.util
    for search in ['numpy'] + (['faiss'] if importlib.util.find_spec('faiss') else []):   # faiss-cpu is optional
        p = Predictor.load(d / 'bundle', search=search)
        got = p.probabilities([load_image(x) for x in rows])
        assert got.shape == ref.shape and np.abs(got - ref).max() < 1e-3
        assert np.abs(p.anomaly([load_image(x) for x in rows])[1] - ref_s).max() < 1e-3
    r = p.predict(rows[0])
    assert r['defect_score'] == pytest.approx(float(ref_s[0]), abs=1e-3)
    assert [x['defect_score'] for x in p.predict_batch(rows)] == pytest.approx(ref_s.tolist(), abs=1e-3)
    assert r['defective'] == (r['defect_score'] >= r['threshold']) and r['prediction'] in ('ok', 'anomalous')
    assert r['anomaly_map'].shape == load_image(rows[0]).shape[:2]
    j = json.loads(json.dumps(to_json(r)))                                        # JSON-ready: no arrays left
    assert {'prediction', 'confidence', 'defect_score', 'score', 'defective', 'threshold', 'boxes'} <= set(j)
    assert meta['parity']['max_abs_diff'] < 1e-3


def test_changed_memory_bank_is_refused(anomaly_run, tmp_path):
    import shutil
    from defect_nb.inference import Predictor, BundleError
    d, _, _ = anomaly_run
    b = tmp_path / 'tampered'; shutil.copytree(d / 'bundle', b)
    bank = np.load(b / 'bank.npy'); bank[3, 5] += 0.5; np.save(b / 'bank.npy', bank)
    with pytest.raises(BundleError, match='bank.npy'): Predictor.load(b)
    (b / 'bank.npy').write_bytes(b'not an array')                                 # and unverified, a broken bank is still an error
    with pytest.raises(BundleError, match='bank.npy'): Predictor.load(b, verify=False)
    c = tmp_path / 'tampered-global'; shutil.copytree(d / 'bundle', c)                # the global term's files are checked the same way
    prec = np.load(c / 'global_precision.npy'); prec[0, 0] *= 2; np.save(c / 'global_precision.npy', prec)
    with pytest.raises(BundleError, match='global_precision.npy'): Predictor.load(c)
    np.save(c / 'global_precision.npy', prec[:5])
    with pytest.raises(BundleError, match='global_precision.npy.*shape'): Predictor.load(c, verify=False)


def test_anomaly_prediction_needs_no_torch(anomaly_run):
    d, run, _ = anomaly_run
    img = run.config and sorted((d / 'syn' / 'images' / 'ok').glob('*.png'))[0]
    code = ("import sys, json; from defect_nb.inference import Predictor, to_json; "
            f"r = Predictor.load({str(d / 'bundle')!r}).predict({str(img)!r}); "
            "assert 'torch' not in sys.modules and 'fastai' not in sys.modules; print(json.dumps(to_json(r)))")
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert 0 <= json.loads(out.stdout)['defect_score'] < 1


def test_cli_train_evaluate_export_predict(tmp_path):
    from defect_nb.synth import synthesize
    from defect_nb.cli import main
    synthesize(tmp_path / 'syn', 3, 96, seed=1, ok_share=0.5, progress=False)
    assert main(['train', '--task', 'anomaly', '--data', str(tmp_path / 'syn'), '--normal-class', 'ok', '--size', '64',
                 '--coreset', '0.2', '--out', str(tmp_path / 'run'), '--json']) == 0
    assert json.loads((tmp_path / 'run' / 'config.json').read_text())['task'] == 'anomaly'
    assert main(['evaluate', str(tmp_path / 'run'), '--json']) == 0
    assert 'image_auroc' in json.loads((tmp_path / 'run' / 'metrics.json').read_text())
    assert main(['export', str(tmp_path / 'run'), '--out', str(tmp_path / 'b'), '--json']) == 0
    img = sorted((tmp_path / 'syn' / 'images' / 'scratches').glob('*.png'))[0]
    assert main(['predict', '--model', str(tmp_path / 'b'), '--image', str(img)]) == 0
    assert main(['train', '--task', 'anomaly', '--data', str(tmp_path / 'syn'), '--normal-class', 'good', '--out', str(tmp_path / 'r2')]) == 2
    # without --size and --coreset the command line takes train_anomaly's own defaults
    assert main(['train', '--task', 'anomaly', '--data', str(tmp_path / 'syn'), '--normal-class', 'ok', '--out', str(tmp_path / 'r3'), '--json']) == 0
    import inspect; from defect_nb.anomaly import train_anomaly
    want = {k: inspect.signature(train_anomaly).parameters[k].default for k in ('coreset',)}
    cfg = json.loads((tmp_path / 'r3' / 'config.json').read_text())
    assert cfg['preprocess']['size'] == inspect.signature(train_anomaly).parameters['size'].default and cfg['coreset'] == want['coreset']
    assert cfg['global']['stage'] == inspect.signature(train_anomaly).parameters['global_stage'].default
    assert main(['train', '--task', 'anomaly', '--data', str(tmp_path / 'syn'), '--normal-class', 'ok', '--size', '64', '--no-global',
                 '--out', str(tmp_path / 'r4'), '--json']) == 0
    assert json.loads((tmp_path / 'r4' / 'config.json').read_text())['global'] is None and not (tmp_path / 'r4' / 'global_mean.npy').exists()


def test_anomaly_bench_smoke(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / 'bench' / 'anomaly_bench.py'), 'synth', '--smoke', '--work', str(tmp_path / 'work'),
                        '--out', str(tmp_path / 'res'), '--layers', '1', '2', '--center', 'off', '--coreset', '1280'], capture_output=True, text=True, timeout=600, cwd=ROOT,
                       env={**os.environ, 'PYTHONWARNINGS': 'ignore'})
    assert r.returncode == 0, (r.stdout[-1500:], r.stderr[-3000:])
    res = json.loads((tmp_path / 'res' / 'smoke' / 'anomaly-synth.json').read_text())
    assert res['smoke'] and res['command'].endswith('synth --smoke --work ' + str(tmp_path / 'work') + ' --out ' + str(tmp_path / 'res')
                                                    + ' --layers 1 2 --center off --coreset 1280')
    assert res['layers'] == [1, 2] and res['center'] is False and res['dim'] == 24 + 40      # the synthetic benchmark's finer grid reaches the run
    assert res['bank_size'] == min(1280, res['n_patches'])
    m = res['metrics']
    assert 0 <= m['image_auroc'] <= 1 and 0 <= m['pixel_auroc'] <= 1 and 0 <= m['pro'] <= 1
    assert set(m['per_class_pixel_auroc']) == set(m['per_class_auroc']) and 'Pixel AUROC of each defect class' in (tmp_path / 'res' / 'smoke' / 'anomaly-synth.md').read_text()
    assert res['bank_size'] <= res['n_patches'] and res['inference_ms_b1']['b1_p50_ms'] > 0 and 'numpy' in res['search_ms_one_image']
    assert 'Command: `python bench/anomaly_bench.py synth --smoke' in (tmp_path / 'res' / 'smoke' / 'anomaly-synth.md').read_text()


def test_pasted_anomaly_bench_smoke(tmp_path):
    "The U-Net on pasted anomalies: drawn from good parts only, trained, scored on the real defects of valid and test."
    r = subprocess.run([sys.executable, str(ROOT / 'bench' / 'anomaly_pasted.py'), 'synth', '--smoke', '--work', str(tmp_path / 'work'),
                        '--out', str(tmp_path / 'res')], capture_output=True, text=True, timeout=600, cwd=ROOT, env={**os.environ, 'PYTHONWARNINGS': 'ignore'})
    assert r.returncode == 0, (r.stdout[-1500:], r.stderr[-3000:])
    res = json.loads((tmp_path / 'res' / 'smoke' / 'anomaly-synth-pasted.json').read_text())
    pasted = pd.read_csv(tmp_path / 'work' / 'pasted-synth-smoke' / 'table.csv')
    assert set(pasted.split) == {'train', 'valid', 'test'} and set(pasted.label) == {'ok', 'anomaly'}  # good parts and drawn anomalies only
    assert res['settings']['n_training_images'] == 2 * res['settings']['n_good_training_images']     # smoke: one drawn copy of each
    for split in ('valid', 'test'):
        m = res[split]
        assert 0 <= m['image_auroc'] <= 1 and 0 <= m['pixel_auroc'] <= 1 and 0 <= m['pro'] <= 1 and m['n_defective'] > 0
        assert set(m['per_class_auroc']) >= set(m['per_class_pixel_auroc']) and m['per_class_pixel_auroc']
    assert 'Command: `python bench/anomaly_pasted.py synth --smoke' in (tmp_path / 'res' / 'smoke' / 'anomaly-synth-pasted.md').read_text()


def test_pasted_anomalies_make_an_ordinary_segmenter(tmp_path):
    "Good parts → drawn anomalies → a U-Net run → a bundle whose torch-free Predictor gives a real defective image a verdict and a probability map."
    from defect_nb.synth import synthesize
    from defect_nb.data import load_table, make_split
    from defect_nb.anomaly import paste_anomalies
    from defect_nb.train import train
    from defect_nb.export import export_bundle
    from defect_nb.inference import Predictor
    import cv2
    synthesize(tmp_path / 'syn', 4, 64, seed=0, ok_share=0.5, progress=False)
    t = make_split(load_table(tmp_path / 'syn'), 42)
    pasted = paste_anomalies(t, 'ok', tmp_path / 'pasted', per_image=1, size=64, progress=False)
    assert (pasted.split == 'test').any() and not pasted.image.str.contains('/syn/').any()       # drawn copies only; the originals untouched
    run = train(pasted, task='segment', size=64, epochs=1, bs=8, encoder_frozen=True, out=tmp_path / 'run', num_workers=0, progress=False)
    export_bundle(run.path, tmp_path / 'bundle', report=False)
    p = Predictor.load(tmp_path / 'bundle')
    img = t[t.label != 'ok'].image.iloc[0]
    r = p.predict(img)
    assert isinstance(r['defective'], bool) and r['probability'].shape == cv2.imread(str(img), cv2.IMREAD_UNCHANGED).shape[:2]   # at the image's own size
    assert 0 <= r['probability'].min() <= r['probability'].max() <= 1 and set(np.unique(r['mask'])) <= {0, 1}
    assert r['defective'] or not r['mask'].any()                                                  # a part that passes shows no mask


def test_cli_paste_anomalies(tmp_path, capsys):
    "`defect-nb paste-anomalies` writes the drawn set and says what to run next; a wrong normal class or a foreign folder is a clear error (exit 2)."
    from defect_nb.synth import synthesize
    from defect_nb.cli import main
    synthesize(tmp_path / 'syn', 3, 64, seed=0, ok_share=0.5, progress=False)
    assert main(['paste-anomalies', '--data', str(tmp_path / 'syn'), '--out', str(tmp_path / 'p'), '--per-image', '1', '--size', '48']) == 0
    out = capsys.readouterr().out
    assert f"defect-nb train --task segment --data {tmp_path / 'p' / 'table.csv'}" in out
    t = pd.read_csv(tmp_path / 'p' / 'table.csv'); assert set(t.label) == {'ok', 'anomaly'} and len(t) == 2 * (t.label == 'ok').sum()
    assert main(['paste-anomalies', '--data', str(tmp_path / 'syn'), '--out', str(tmp_path / 'q'), '--normal-class', 'good']) == 2
    assert "normal class 'good' is not in the data" in capsys.readouterr().err
    assert main(['paste-anomalies', '--data', str(tmp_path / 'syn'), '--out', str(tmp_path / 'syn'), '--overwrite']) == 2   # the dataset itself is never replaced
    assert 'not written by paste_anomalies' in capsys.readouterr().err and (tmp_path / 'syn' / 'labels.csv').exists()


def test_service_and_dashboard_on_an_anomaly_bundle(anomaly_run):
    "POST /predict gives the verdict and score; /segment adds the heatmap; the dashboard's bundle path shows score and verdict."
    import base64, cv2
    from fastapi.testclient import TestClient
    from defect_nb.serve import create_app
    from defect_nb.dashboard import analyse_bundle, decide
    from defect_nb.core import load_image
    d, _, meta = anomaly_run
    img = sorted((d / 'syn' / 'images' / 'scratches').glob('*.png'))[0]
    c = TestClient(create_app(d / 'bundle'))
    r = c.post('/predict', files={'file': (img.name, img.read_bytes(), 'image/png')}).json()
    assert r['filename'] == img.name and 0 <= r['defect_score'] < 1 and r['defective'] == (r['defect_score'] >= meta['threshold'])
    s = c.post('/segment', files={'file': (img.name, img.read_bytes(), 'image/png')}).json()
    heat = cv2.imdecode(np.frombuffer(base64.b64decode(s['heatmap_png']), np.uint8), cv2.IMREAD_COLOR)
    assert heat.shape[:2] == load_image(img).shape[:2] and s['defect_score'] == pytest.approx(r['defect_score'])
    res = analyse_bundle(d / 'bundle', load_image(img))
    assert res['task'] == 'anomaly' and res['prob'].shape == load_image(img).shape[:2]
    lo, hi = decide(res, 0.0), decide(res, 0.9999)
    assert lo['defective'] and not hi['defective'] and lo['defect_area'] == res['prob'].size
    # a part that passes shows no region, even where its map reaches the threshold (as the Predictor answers)
    passing = dict(res, defect_score=0.2, prob=np.full_like(res['prob'], 0.5))
    d_ = decide(passing, 0.3)
    assert not d_['defective'] and d_['defect_area'] == 0 and not d_['mask'].any()
    assert decide(dict(passing, defect_score=0.4), 0.3)['defect_area'] == res['prob'].size


def test_differnet_split_is_the_published_one():
    "bench/protocols holds DifferNet's 761 training tiles; the benchmark's split puts every defect in test and never a listed tile there."
    import re
    from types import SimpleNamespace
    from conftest import real_dataset
    names = (ROOT / 'bench' / 'protocols' / 'differnet_mtd_train_filenames.txt').read_text().split()
    assert len(names) == len(set(names)) == 761 and all(re.fullmatch(r'exp\d_num_\d+\.jpg', n) for n in names)
    root = real_dataset('magnetic-tile')
    sys.path.insert(0, str(ROOT / 'bench'))
    from anomaly_bench import differnet_table
    t = differnet_table(SimpleNamespace(data=str(root.parent)))
    listed = t.image.map(lambda p: os.path.basename(p)).isin(names)
    assert t[listed].split.isin(['train', 'valid']).all() and (t[~listed].split == 'test').all()
    assert (t[t.split != 'test'].label == 'Free').all() and dict(t.split.value_counts()) == {'train': 647, 'valid': 114, 'test': 583}


def test_anomaly_bench_variant_name_is_checked():
    "A variant names its own results file (anomaly-NAME-VARIANT), so it is refused unless it is a plain name: no path can overwrite the default row."
    r = subprocess.run([sys.executable, str(ROOT / 'bench' / 'anomaly_bench.py'), 'mt', '--variant', '../anomaly-mt'], capture_output=True, text=True,
                       timeout=120, cwd=ROOT)
    assert r.returncode == 2 and "--variant '../anomaly-mt': letters, digits and dashes only" in r.stderr
