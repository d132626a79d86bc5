"""INT8 that agrees with its model: the agreement bar decides the bundle's default variant, the sensitivity search is
deterministic for a seed, and static INT8 exports work for the probe classifier (with test-time views in the graph),
small_cnn and the U-Nets."""
import json
import numpy as np, pytest
from defect_nb.synth import synthesize
from defect_nb.train import train, load_model
from defect_nb.core import load_image, sha256
from defect_nb.export import export_bundle, calibration_rows, int8_search, model_inputs, quality, to_onnx, INT8_BAR, INT8_MIN_SPEEDUP, _int8_verdict
from defect_nb.evaluate import run_table
from defect_nb.inference import Predictor, BundleError, bundle_info


@pytest.fixture(scope='module')
def syn(tmp_path_factory):
    d = tmp_path_factory.mktemp('int8'); synthesize(d / 'syn', 8, 64, seed=0, progress=False); return d


def test_int8_missing_the_bar_keeps_fp32_and_says_why(syn):
    """A probe (64 px) held to a bar no INT8 model can reach (agreement above 1): the search runs every step, misses,
    and FP32 stays the default. (With the default bar this probe's INT8 now passes: the search keeps its end in FP32.)"""
    r = train(syn / 'syn', 'classify', 'probe', size=64, out=syn / 'probe', num_workers=0, progress=False)
    strict = dict(agreement=1.01, max_drop=0.)
    m = export_bundle(r.path, syn / 'b', quantize_mode='static', report_n=8, bar=strict)
    i8 = m['int8']
    assert i8['agreement'] < strict['agreement'] and i8['bar'] == strict
    assert m['default_variant'] == 'fp32' and not i8['passes'] and not i8['kept']
    assert i8['speedup'] > 0 and m['report']['onnx_int8_static']['default'] is False   # timed at export all the same
    assert m['default_reason'].startswith('FP32 is the default: INT8 misses the bar') and f"{i8['agreement']:.4f}" in m['default_reason']
    assert i8['n_valid'] == len(run_table(r.path, 'valid')) and i8['calibration']['n_images'] > 0
    assert len(i8['calibration']['per_class']) == len(m['classes'])                       # every class calibrates
    assert i8['search'], 'the sensitivity search ran'
    assert not (syn / 'b' / 'model.int8.onnx').exists() and 'model.int8.onnx' not in m['files']
    assert m['report']['onnx_int8_static']['file'] is None                               # measured, not kept
    assert Predictor.load(syn / 'b').variant == 'fp32'
    with pytest.raises(BundleError, match='misses the bar'): Predictor.load(syn / 'b', 'int8')
    info = bundle_info(syn / 'b')
    assert info['default_variant'] == 'fp32' and info['variants'] == ['fp32'] and info['int8']['agreement'] == i8['agreement']
    # on request the file is kept, still not as the default
    m2 = export_bundle(r.path, syn / 'b2', quantize_mode='static', report=False, keep_int8=True, bar=strict)
    assert m2['default_variant'] == 'fp32' and (syn / 'b2' / 'model.int8.onnx').exists() and m2['int8']['agreement'] == i8['agreement']
    assert Predictor.load(syn / 'b2').variant == 'fp32' and Predictor.load(syn / 'b2', 'int8').variant == 'int8'
    # the default bar: this probe's INT8 holds it, becomes the default, and the Predictor runs it
    m3 = export_bundle(r.path, syn / 'b3', quantize_mode='static', report=False)
    assert m3['int8']['agreement'] >= INT8_BAR['agreement'], m3['int8']
    assert m3['default_variant'] == 'int8' and m3['default_reason'].startswith('INT8 is the default')
    assert Predictor.load(syn / 'b3').variant == 'int8'


def test_int8_holding_the_bar_but_not_faster_keeps_fp32():
    """An INT8 model that agrees with FP32 but is not faster has no reason to be the default (measured: the synthetic
    U-Net with a full-resolution decoder stage held the bar at 0.92x the FP32 model's speed at batch 1)."""
    base = dict(agreement=0.995, n_valid=100, drop=0., bar=INT8_BAR, passes=True)
    slow = _int8_verdict(dict(base), 'segment', 0.92)
    assert not slow['default'] and slow['reason'].startswith('FP32 is the default: INT8 holds the bar') and '0.92×' in slow['reason']
    assert not _int8_verdict(dict(base), 'classify', INT8_MIN_SPEEDUP - 0.01)['default']
    fast = _int8_verdict(dict(base), 'classify', 2.4)
    assert fast['default'] and fast['reason'].startswith('INT8 is the default') and '2.40×' in fast['reason']
    unmeasured = _int8_verdict(dict(base), 'classify', None)            # report=False: the speed was not measured
    assert unmeasured['default'] and 'not measured' in unmeasured['reason']
    assert not _int8_verdict(dict(base, passes=False), 'classify', 5.0)['default']


@pytest.fixture(scope='module')
def cnn(syn):
    return train(syn / 'syn', 'classify', 'small_cnn', epochs=1, size=48, bs=8, out=syn / 'cnn', num_workers=0, progress=False)


def test_sensitivity_search_is_deterministic(cnn, tmp_path):
    "Same seed: same calibration images, same excluded nodes, same figures, byte-identical INT8 model; another seed draws other images."
    run, cfg = cnn.path, cnn.config
    assert list(calibration_rows(run, 20, seed=0).image) == list(calibration_rows(run, 20, seed=0).image)
    assert list(calibration_rows(run, 20, seed=0).image) != list(calibration_rows(run, 20, seed=1).image)
    to_onnx(load_model(run), tmp_path / 'm.onnx', 48)
    valid = run_table(run, 'valid').reset_index(drop=True)
    xv = model_inputs([load_image(p) for p in valid.image], cfg['preprocess'])
    xc = model_inputs([load_image(p) for p in calibration_rows(run, 20, seed=0).image], cfg['preprocess'])
    score = lambda p: quality(p, valid, cfg)['accuracy']
    bar = dict(agreement=1.01, max_drop=0)                 # out of reach: the search runs all its steps
    a = int8_search(tmp_path / 'm.onnx', tmp_path / 'a.onnx', xc, xv, score, ('minmax', 'entropy'), bar)
    b = int8_search(tmp_path / 'm.onnx', tmp_path / 'b.onnx', xc, xv, score, ('minmax', 'entropy'), bar)
    assert len(a['search']) >= 2 and not a['passes']
    assert a['search'][0]['strategy'] == 'input' and a['search'][1]['strategy'] == 'tail'   # the input side first, then the end
    assert a == b and sha256(tmp_path / 'a.onnx') == sha256(tmp_path / 'b.onnx')


@pytest.mark.parametrize('arch,task,kw', [('unet_tiny', 'segment', {}), ('unet_lite0', 'segment', {}),
                                          ('probe', 'classify', dict(tta='flips'))])
def test_static_int8_exports(syn, arch, task, kw):
    "Static INT8 with the search for the U-Nets (Dice of masks) and the probe with test-time views stacked in the graph."
    r = train(syn / 'syn', task, arch, epochs=1, size=48, bs=8, out=syn / f'r-{arch}', num_workers=0, progress=False, **kw)
    m = export_bundle(r.path, syn / f'b-{arch}', quantize_mode='static', report=False, keep_int8=True, calib_n=16,
                      calib_methods=('minmax',))
    i8 = m['int8']
    assert i8['measure'] == ('mask Dice' if task == 'segment' else 'top-1 agreement') and 0 <= i8['agreement'] <= 1
    assert m['default_variant'] == ('int8' if i8['passes'] else 'fp32') and i8['speedup'] is None   # report=False: speed not measured
    p = Predictor.load(syn / f'b-{arch}', 'int8')
    img = run_table(r.path, 'test').image.iloc[0]
    assert p.predict(img)['prediction'] and json.loads((syn / f'b-{arch}' / 'bundle.json').read_text())['int8']['method'] == 'minmax'
