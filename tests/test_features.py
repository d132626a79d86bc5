"Frozen-feature training: the cache never serves a stale vector, head fits repeat exactly, runs behave like any other run."
import json, shutil
import numpy as np, pandas as pd, pytest, torch
from PIL import Image
from defect_nb.data import load_table, make_split
from defect_nb.features import FeatureExtractor, fit_head, cache_dir
from defect_nb.train import train_classifier, train, load_model, list_epochs, RunError, load_config


@pytest.fixture(scope='module')
def table(synth_small):
    return make_split(load_table(synth_small), seed=0, save=False)


def test_cache_keyed_by_content_and_setting(table, tmp_path):
    paths = list(table.image[:4]); c = tmp_path / 'c'
    a = FeatureExtractor(size=48, cache=c); fa = a(paths, progress=False); assert a.stats == dict(a.stats, hits=0, computed=4)
    b = FeatureExtractor(size=48, cache=c); fb = b(paths, progress=False); assert (b.stats['hits'], b.stats['computed']) == (4, 0)
    np.testing.assert_array_equal(fa, fb)
    # the same file name with other bytes is recomputed: the key is the content, not the path
    work = tmp_path / 'imgs'; work.mkdir(); local = [shutil.copy(p, work) for p in paths]
    FeatureExtractor(size=48, cache=c)(local, progress=False)
    im = np.array(Image.open(local[0])); Image.fromarray(255 - im).save(local[0])
    e = FeatureExtractor(size=48, cache=c); fe = e(local, progress=False)
    assert (e.stats['hits'], e.stats['computed']) == (3, 1) and not np.allclose(fe[0], fa[0])
    for change in [dict(size=56), dict(backbone='efficientnet_lite1'), dict(clahe=True), dict(tta='hflip'), dict(pretrained=False)]:
        x = FeatureExtractor(**{'size': 48, **change}, cache=c); x(paths, progress=False)
        assert x.stats['computed'] == 4, change
    # a damaged cache file is recomputed, not trusted
    f = next(a.cache.rglob('*.npy')); f.write_bytes(b'garbage')
    g = FeatureExtractor(size=48, cache=c); np.testing.assert_allclose(g(paths, progress=False), fa, atol=1e-4); assert g.stats['computed'] == 1


def test_cache_folder_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv('DEFECT_NB_CACHE', str(tmp_path / 'x'))
    assert cache_dir() == tmp_path / 'x' / 'features'


def test_head_fit_deterministic():
    rng = np.random.default_rng(1); X = rng.normal(size=(90, 12)); y = rng.integers(0, 3, 90); X[np.arange(90), y] += 3
    for hidden in (0, 16):
        a = fit_head(X[:60], y[:60], X[60:], y[60:], 3, hidden=hidden, seed=7, grid=(0.1, 1.0))
        b = fit_head(X[:60], y[:60], X[60:], y[60:], 3, hidden=hidden, seed=7, grid=(0.1, 1.0))
        for k in a['head']: torch.testing.assert_close(a['head'][k], b['head'][k], rtol=0, atol=0)


def test_features_run_is_an_ordinary_run(table, tmp_path):
    r = train_classifier(table, method='features', size=48, tta='hflip', out=tmp_path / 'f', progress=False)
    cfg = load_config(r.path)
    assert cfg['method'] == 'features' and cfg['arch'] == 'probe' and cfg['options']['tta'] == 'hflip' and list_epochs(r.path) == [1]
    assert cfg['head']['param'] == 'C' and len(cfg['head']['sweep']) >= 3
    assert list(pd.read_csv(r.path / 'history.csv').phase) == ['features']
    m = load_model(r.path); assert m.tta == 'hflip'
    with pytest.raises(RunError, match='already finished'):
        from defect_nb.train import resume; resume(r.path, progress=False)


def test_finetune_starts_from_the_head(table, tmp_path):
    r = train_classifier(table, method='finetune', size=48, bs=8, epochs=2, out=tmp_path / 'ft', num_workers=0, progress=False)
    h = pd.read_csv(r.path / 'history.csv')
    assert list(h.phase) == ['features', 'full', 'full'] and list_epochs(r.path) == [1, 2, 3]
    one_view = int(h.epoch[h.valid_loss.idxmin()]); vc = load_config(r.path).get('views_check')
    assert (vc is not None) == (one_view != 1)                                          # hflip views: a fine-tuned winner meets the probe again
    if vc: assert vc['epoch'] == one_view and vc['kept'] == (1 if vc['probe_valid_loss'] <= vc['epoch_valid_loss'] else one_view)
    assert r.best_epoch == (vc['kept'] if vc else one_view)
    assert (r.path / 'best.pth').read_bytes() == (r.path / f'epoch_{r.best_epoch:02d}.pth').read_bytes()
    # the views check itself, on this run's last epoch as if it had won on one view
    from types import SimpleNamespace
    from defect_nb.train import _settle_views
    cfg = load_config(r.path); cfg.pop('views_check', None)
    sv = SimpleNamespace(rows=h.to_dict('records'), best_epoch=3, best=float(h.valid_loss[2]))
    _settle_views(r.path, cfg, sv, False)
    vc = cfg['views_check']; assert vc['epoch'] == 3 and vc['tta'] == 'hflip' and np.isfinite(vc['epoch_valid_loss'])
    assert vc['kept'] == (1 if vc['probe_valid_loss'] <= vc['epoch_valid_loss'] else 3) == sv.best_epoch == load_config(r.path)['best_epoch']
    assert (r.path / 'best.pth').read_bytes() == (r.path / f"epoch_{vc['kept']:02d}.pth").read_bytes()
    probe = torch.load(r.path / 'epoch_01.pth', weights_only=True); last = torch.load(r.path / 'epoch_03.pth', weights_only=True)
    assert not torch.equal(probe['head.weight'], last['head.weight'])                  # it trained from the head on
    assert any(not torch.equal(probe[k], last[k]) for k in probe if k.startswith('body.') and 'running' not in k and probe[k].is_floating_point())
    assert all(torch.equal(probe[k], last[k]) for k in probe if 'running_mean' in k)   # batch-norm statistics frozen
    # the probe's epoch-1 loss is on one view per image, as fastai validates the fine-tuning epochs (its hflip figure kept beside it)
    from defect_nb.train import run_table
    from defect_nb.evaluate import predict_images
    from defect_nb.core import load_image
    m = load_model(r.path, 1); m.tta = 'none'; va = run_table(r.path, 'valid'); classes = load_config(r.path)['classes']
    p = np.asarray(predict_images(m, [load_image(x) for x in va.image], load_config(r.path)['preprocess'], 'classify', progress=False))
    y = va.label.map(classes.index).to_numpy()
    assert abs(-np.log(p[np.arange(len(y)), y]).mean() - h.valid_loss[0]) < 1e-3
    assert 'valid_loss_tta' in h and np.isfinite(h.valid_loss_tta[0]) and h.valid_loss_tta[0] != h.valid_loss[0]


@pytest.mark.parametrize('args, words', [
    (['--method', 'features', '--task', 'segment'], 'is for classification'),
    (['--method', 'features', '--arch', 'small_cnn'], 'needs a pretrained timm backbone'),
    (['--method', 'finetune', '--no-pretrained'], 'needs pretrained features'),
    (['--method', 'features', '--loss', 'focal'], "use method 'fastai'"),
    (['--method', 'features', '--tta', 'rot45'], 'invalid choice'),
])
def test_cli_method_errors(cli, synth_small, args, words):
    r = cli('train', '--data', synth_small, '--size', '48', '--out', 'runs/m', *args)
    assert r.returncode == 2 and words in r.stderr and 'Traceback' not in r.stderr, r.stderr[-1500:]


def test_cli_default_says_what_it_picked(cli, synth_small, tmp_path):
    r = cli('train', '--data', synth_small, '--budget', '2', '--out', 'runs/auto', '--workers', '0')
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'method features: frozen efficientnet_lite0 features at' in r.stdout and 'budget' in r.stdout
    assert load_config(tmp_path / 'runs' / 'auto')['method'] == 'features'


def test_evaluate_from_the_cache_matches_the_model(table, tmp_path):
    "A frozen-feature run is evaluated from cached features; the probabilities are the model's own, to float precision."
    from defect_nb.evaluate import evaluate, predict_images, run_table
    from defect_nb.core import load_image
    r = train_classifier(table, method='features', size=48, tta='hflip', out=tmp_path / 'f', progress=False)
    ev = evaluate(r.path, 'test', progress=False, save=False)
    rows = run_table(r.path, 'test')
    p = predict_images(load_model(r.path), [load_image(x) for x in rows.image], r.config['preprocess'])
    cls = r.config['classes']
    np.testing.assert_allclose(ev.table[[f'p_{c}' for c in cls]].to_numpy(), p, atol=1e-4)
