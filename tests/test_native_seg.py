"Segmentation at native resolution: tiles in training, whole images of any size at evaluation, export and prediction; the decision (threshold, minimum area) travels with the run."
import json
from pathlib import Path
import numpy as np, pytest, cv2
from defect_nb.core import load_image
from defect_nb.train import train_segmenter, load_config, load_model, RunError
from defect_nb.evaluate import evaluate, predict_images
from defect_nb.export import export_bundle
from defect_nb.inference import Predictor


@pytest.fixture(scope='module')
def native_run(synth_small, tmp_path_factory):
    out = tmp_path_factory.mktemp('native') / 'run'
    r = train_segmenter(synth_small, epochs=1, tile=32, bs=8, out=out, progress=False, num_workers=0)
    return r.path


def test_tiles_recorded_and_whole_images_evaluated(native_run):
    pre = load_config(native_run)['preprocess']
    assert pre['size'] is None and pre['tile'] == 32 and pre['defect_share'] == 0.5
    ev = evaluate(native_run, progress=False)
    assert ev.metrics['n'] == len(ev.table) and (ev.table.pixels == 64 * 64).all()    # whole 64 px images, not 32 px tiles
    thr = json.loads((native_run / 'threshold.json').read_text())
    assert thr['chosen_on'] == 'valid' and thr['min_area'] >= 1 and 0 < thr['threshold'] < 1
    assert ev.metrics['min_area'] == thr['min_area'] and ev.metrics['image_score'] == thr['image_score']
    assert ev.metrics['mask_threshold'] == thr['mask_threshold'] and 0 < thr['mask_threshold'] < 1   # the mask's own threshold, chosen on valid by Dice


def test_tiles_keep_batch_norm_statistics(native_run):
    "Tile training freezes batch-norm statistics by default (with them updating, the magnetic-tile run collapsed to all-background)."
    import torch
    from defect_nb.models import build_model
    assert load_config(native_run)['bn_frozen'] is True
    trained = load_model(native_run).state_dict()
    fresh = build_model('unet_lite0', 2, 'segment', pretrained=True, img_size=32)[0].state_dict()
    stats = [k for k in fresh if k.endswith('running_mean') or k.endswith('running_var')]
    assert len(stats) > 50 and all(torch.equal(trained[k], fresh[k]) for k in stats)
    assert not all(torch.equal(trained[k], fresh[k]) for k in fresh if k.endswith('weight'))   # the weights did train


def test_export_parity_at_native_size_and_decision_in_bundle(native_run, synth_small, tmp_path):
    evaluate(native_run, progress=False)
    meta = export_bundle(native_run, tmp_path / 'b', report_n=4)
    assert meta['input']['size'] is None and meta['input']['tile'] == 32
    assert meta['parity']['native']['n_images'] == 4 and meta['parity']['native']['max_abs_diff'] < 1e-4
    thr = json.loads((native_run / 'threshold.json').read_text())
    assert meta['threshold'] == thr['threshold'] and meta['min_area'] == thr['min_area'] and meta['mask_threshold'] == thr['mask_threshold']
    # an image of another size than the training tiles and images: the Predictor answers at that size, as PyTorch does
    img = cv2.resize(load_image(next((Path(synth_small) / 'images' / 'scratches').glob('*.png'))), (96, 80))
    res = Predictor.load(tmp_path / 'b').predict(img)
    assert res['mask'].shape == (80, 96)
    pt = predict_images(load_model(native_run), [img], load_config(native_run)['preprocess'], 'segment')[0]
    assert pt.shape[-2:] == (80, 96) and np.abs(pt[1:].sum(0) - res['probability']).max() < 1e-4
    # the decision travels on to the service: the bundle's threshold, minimum area and mask threshold, as the Predictor applies them
    from fastapi.testclient import TestClient
    from defect_nb.serve import create_app
    with TestClient(create_app(tmp_path / 'b')) as c:
        j = c.post('/segment', files={'file': ('x.png', cv2.imencode('.png', img)[1].tobytes(), 'image/png')}).json()
    assert (j['threshold'], j['mask_threshold'], j['defective'], j['defect_area']) == (thr['threshold'], thr['mask_threshold'], res['defective'], res['defect_area'])


def test_tile_errors(synth_small, tmp_path):
    with pytest.raises(RunError, match='multiple of 32'): train_segmenter(synth_small, tile=50, out=tmp_path / 'a', progress=False)
    with pytest.raises(RunError, match='segmentation'):
        from defect_nb.train import train_classifier
        train_classifier(synth_small, tile=64, method='fastai', out=tmp_path / 'b', progress=False)
    with pytest.raises(RunError, match='between 0 and 1'): train_segmenter(synth_small, tile=64, defect_share=2, out=tmp_path / 'c', progress=False)


def test_one_mask_class_per_label(synth_small, tmp_path):
    from defect_nb.data import load_table, make_split, masks_by_label
    t = masks_by_label(make_split(load_table(synth_small), seed=0, save=False))
    run = train_segmenter(t, epochs=1, tile=32, bs=8, out=tmp_path / 'mc', progress=False, num_workers=0).path
    cfg = load_config(run)
    assert cfg['mask_classes'] == 'label' and cfg['normal_label'] == 'ok' and cfg['n_out'] == 7 and cfg['classes'][0] == 'background'
    m = evaluate(run, progress=False).metrics
    assert list(m['class_iou']) == cfg['classes'] and 0 <= m['miou_classes'] <= 1


def test_large_images_predicted_in_overlapping_windows(native_run, synth_small, tmp_path):
    "Above max_side a side the Predictor and PyTorch evaluation predict in the same blended windows; smaller images go in one pass."
    from types import SimpleNamespace
    from defect_nb.core import NATIVE_MAX_SIDE
    meta = export_bundle(native_run, tmp_path / 'b', report=False)
    assert meta['input']['max_side'] == NATIVE_MAX_SIDE and meta['input']['overlap'] == NATIVE_MAX_SIDE // 4
    img = cv2.resize(load_image(next((Path(synth_small) / 'images' / 'scratches').glob('*.png'))), (200, 150))
    p = Predictor.load(tmp_path / 'b')
    whole = p.probabilities([img])[0]
    shapes, real = [], p.session.run
    p.session = SimpleNamespace(run=lambda out, feed: shapes.append(feed['input'].shape) or real(out, feed))
    p.inp.update(max_side=64, overlap=16)
    win = p.probabilities([img])[0]
    assert win.shape == whole.shape and all(s[-2:] == (64, 64) for s in shapes) and sum(s[0] for s in shapes) == 3 * 4   # 150 → 3 rows, 200 → 4 columns
    assert np.abs(win - whole).mean() < 0.02 and np.corrcoef(win[1].ravel(), whole[1].ravel())[0, 1] > 0.95  # less context, blended: close to the whole pass (0.968 for a 1-epoch model with frozen statistics)
    shapes.clear(); one = p.probabilities([img[:60, :50]])[0]
    assert shapes == [(1, 3, 60, 50)] and one.shape[-2:] == (60, 50)                                      # no larger than a window: one pass
    pre = dict(load_config(native_run)['preprocess'], max_side=64, overlap=16)
    pt = predict_images(load_model(native_run), [img], pre, 'segment')[0]
    assert np.abs(pt - win).max() < 1e-3                                                                  # PyTorch takes the same windows
    res = p.predict(img)
    assert res['mask'].shape == (150, 200) and np.abs(res['probability'] - win[1:].sum(0)).max() < 1e-6
