"Export to a bundle and predict with it from the command line: same answers as the checkpoint, onnxruntime only."
import json, pickle, shutil, subprocess, sys
import numpy as np, pandas as pd, pytest
from defect_nb.core import load_image
from defect_nb.synth import synthesize
from defect_nb.train import train_classifier, load_model
from defect_nb.evaluate import evaluate, predict_images, run_table


@pytest.fixture(scope='module')
def bundle(tmp_path_factory):
    d = tmp_path_factory.mktemp('exp')
    synthesize(d / 'syn', 6, 96, seed=0, progress=False)
    r = train_classifier(d / 'syn', epochs=1, size=64, bs=16, out=d / 'run', num_workers=0, progress=False)
    evaluate(r.path, progress=False)
    res = subprocess.run([str(shutil.which('defect-nb', path=str(sys.prefix + '/bin'))), 'export', str(r.path), '--out', str(d / 'bundle'),
                          '--int8', '--report-n', '8'], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert 'parity max' in res.stdout and 'onnx_int8_static' in res.stdout
    return r.path, d / 'bundle'


def test_predict_image_matches_checkpoint(cli, bundle):
    run, b = bundle
    img = run_table(run, 'test').image.iloc[0]
    r = cli('predict', '--model', b, '--image', img, '--variant', 'fp32')       # the bundle's INT8 may be its default: compare FP32
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(r.stdout)
    assert set(res) >= {'filename', 'prediction', 'confidence', 'probabilities', 'defective', 'threshold'}
    cfg = json.loads((run / 'config.json').read_text())
    pt = predict_images(load_model(run), [load_image(img)], cfg['preprocess'])[0]
    assert res['prediction'] == cfg['classes'][int(pt.argmax())]
    assert max(abs(res['probabilities'][c] - pt[i]) for i, c in enumerate(cfg['classes'])) < 1e-4
    assert res['threshold'] == json.loads((run / 'threshold.json').read_text())['threshold']


def test_predict_folder_skips_bad_files(cli, bundle, tmp_path):
    run, b = bundle
    f = tmp_path / 'in'; f.mkdir()
    for p in run_table(run, 'test').image[:3]: shutil.copy(p, f)
    (f / 'text.png').write_text('hello'); (f / 'empty.jpg').write_bytes(b'')
    r = cli('predict', '--model', b, '--folder', f, '--out', 'res.csv')
    assert r.returncode == 1, r.stderr[-1500:]
    assert r.stderr.count('skipped') == 2 and 'is empty' in r.stderr and 'is not an image' in r.stderr
    t = pd.read_csv(tmp_path / 'res.csv')
    assert len(t) == 5 and t.error.notna().sum() == 2 and t.prediction.notna().sum() == 3
    r = cli('predict', '--model', b, '--folder', f, '--out', 'res.csv')
    assert r.returncode == 2 and 'exists' in r.stderr


def test_inference_imports_no_torch():
    r = subprocess.run([sys.executable, '-c', "import defect_nb.inference, defect_nb.cli, sys; "
                        "assert 'torch' not in sys.modules and 'fastai' not in sys.modules, sorted(m for m in sys.modules if 'torch' in m)[:5]"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_tampered_and_broken_bundles(cli, bundle, tmp_path):
    run, b = bundle
    img = run_table(run, 'test').image.iloc[0]
    t = tmp_path / 't'; shutil.copytree(b, t)
    data = bytearray((t / 'model.onnx').read_bytes()); data[100] ^= 0xFF; (t / 'model.onnx').write_bytes(bytes(data))
    r = cli('predict', '--model', t, '--image', img)
    assert r.returncode == 2 and 'does not match its recorded sha256' in r.stderr
    (t / 'bundle.json').write_text('{not json')
    r = cli('predict', '--model', t, '--image', img)
    assert r.returncode == 2 and 'is not valid JSON' in r.stderr
    (t / 'bundle.json').unlink()
    r = cli('predict', '--model', t, '--image', img)
    assert r.returncode == 2 and 'no bundle.json' in r.stderr


def test_pickle_offered_as_model_is_never_unpickled(cli, bundle, tmp_path):
    "A pickle in place of model.onnx, with a matching hash: onnxruntime refuses it and nothing is unpickled."
    run, b = bundle
    t = tmp_path / 'p'; shutil.copytree(b, t)
    marker = tmp_path / 'PWNED'
    class Evil:
        def __reduce__(self): return (open, (str(marker), 'w'))
    meta = json.loads((t / 'bundle.json').read_text())
    name = 'model.int8.onnx' if meta.get('default_variant') == 'int8' else 'model.onnx'      # the file predict loads
    (t / name).write_bytes(pickle.dumps(Evil()))
    import hashlib
    meta['files'][name]['sha256'] = hashlib.sha256((t / name).read_bytes()).hexdigest()
    (t / 'bundle.json').write_text(json.dumps(meta))
    r = cli('predict', '--model', t, '--image', run_table(run, 'test').image.iloc[0])
    assert r.returncode == 2 and 'not a model onnxruntime can load' in r.stderr
    assert not marker.exists()


def test_export_fails_loudly_when_onnx_disagrees(bundle, tmp_path, monkeypatch):
    "An ONNX graph that differs from the checkpoint (weights perturbed before export) is caught and nothing is written."
    import copy, torch
    import defect_nb.export as ex
    run, _ = bundle
    real = ex.to_onnx
    def perturbed(model, path, *a, **k):
        m = copy.deepcopy(model)
        with torch.no_grad():
            for p in m.parameters(): p.add_(0.05 * torch.randn_like(p))
        return real(m, path, *a, **k)
    monkeypatch.setattr(ex, 'to_onnx', perturbed)
    with pytest.raises(ex.ExportError, match='ONNX disagrees with the checkpoint'):
        ex.export_bundle(run, tmp_path / 'b', report=False)
    assert not (tmp_path / 'b').exists() and not list(tmp_path.glob('.b.tmp*'))


def test_elpv_subset_run_reports_mono_and_poly(tmp_path, monkeypatch):
    "A run on a subset of ELPV evaluates on its own split, with results broken down by cell type."
    monkeypatch.setenv('DEFECT_NB_DATA', str(tmp_path / 'data'))
    from defect_nb.data import load_table
    t = load_table('elpv', verbose=False)
    sub = t.groupby(['label', 'type']).head(15).copy(); sub.attrs = t.attrs
    r = train_classifier(sub, 'small_cnn', epochs=1, size=48, bs=16, out=tmp_path / 'elpv', num_workers=0, progress=False)
    ev = evaluate(r.path, progress=False)
    assert ev.metrics['n'] == (r.learn.dls.table.split == 'test').sum()
    assert set(ev.metrics['by_type']) == {'mono', 'poly'} and 0 <= ev.metrics['threshold'] <= 1
