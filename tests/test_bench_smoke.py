"Every benchmark script still runs end to end, in its smoke mode (a few images, one epoch); the full runs are in bench/results."
import json, os, subprocess, sys
import pytest
from conftest import ROOT


def run(args, timeout=1200):
    r = subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                       env={**os.environ, 'PYTHONWARNINGS': 'ignore'})
    assert r.returncode == 0, (r.stdout[-1500:], r.stderr[-3000:])
    return r


def test_real_data_benchmarks_smoke(tmp_path):
    from conftest import real_dataset
    real_dataset('neu-det'); real_dataset('magnetic-tile')             # CI must have them; elsewhere skip with the reason
    run([ROOT / 'bench' / 'real_bench.py', 'all', '--smoke', '--work', tmp_path / 'work', '--out', tmp_path / 'res'])
    for name in ['neu', 'elpv', 'mt', 'synth-cls', 'synth-seg']:
        r = json.loads((tmp_path / 'res' / 'smoke' / f'{name}.json').read_text())
        assert r['smoke'] and r['n_test'] > 0 and r['command'].endswith(f'{name} --smoke')
        assert {'pytorch_fp32', 'onnx_fp32', 'onnx_int8_static'} <= set(r['export'])
        key = r['goal'][0]; assert 0 <= r[key] <= 1 and len(r.get(key + '_ci', [0, 1])) == 2
        md = (tmp_path / 'res' / 'smoke' / f'{name}.md').read_text()
        assert 'Command: `python bench/real_bench.py' in md and '| onnx_int8_static |' in md
    ts = json.loads((tmp_path / 'res' / 'smoke' / 'mt.json').read_text())['two_stage']      # mIoU over defect types, as the anchors report it
    assert len(ts['class_iou']) == 6 and 0 <= ts['miou_classes'] <= 1 and ts['variant'] in ('types', 'gate')
    assert 'two-stage' in (tmp_path / 'res' / 'smoke' / 'mt.md').read_text()
    e = json.loads((tmp_path / 'res' / 'smoke' / 'elpv.json').read_text())
    assert {'mono', 'poly'} == set(e['by_type']) and 0 <= e['binary_accuracy'] <= 1
    ft = tmp_path / 'ft'; ft.mkdir()                                   # finetune_check reads finished NAME-finetune runs: the smoke one, renamed
    (ft / 'synth-cls-finetune').symlink_to(tmp_path / 'work' / 'synth-cls-finetune-smoke', target_is_directory=True)
    run([ROOT / 'bench' / 'finetune_check.py', '--work', ft, '--out', tmp_path / 'ftres'])
    c = json.loads((tmp_path / 'ftres' / 'finetune_check.json').read_text())['benchmarks']
    assert list(c) == ['synth-cls'] and [r['method'] for r in c['synth-cls']] == ['features', 'finetune']
    assert 0 <= c['synth-cls'][1]['accuracy'] <= 1 and c['synth-cls'][1]['n_test'] > 0
    assert '| synth-cls | finetune (head + ' in (tmp_path / 'ftres' / 'finetune_check.md').read_text()


def test_summary_table_from_results(tmp_path):
    "real.md is built from whatever results files exist, with the published anchors beside ours."
    res = tmp_path / 'res'; res.mkdir()
    fake = json.loads((ROOT / 'bench' / 'results' / 'neu.json').read_text())       # a real results file, numbers changed
    fake.update(accuracy=0.95, accuracy_ci=[0.93, 0.97], anchors=[['X 2020', 'accuracy', 0.99]],
                export={**fake['export'], 'onnx_fp32': dict(fake['export']['onnx_fp32'], batch_img_s=100.0),
                        'onnx_int8_static': dict(fake['export']['onnx_int8_static'], batch_img_s=200.0, agreement=0.9912, default=True)})
    (res / 'neu.json').write_text(json.dumps(fake))
    run([ROOT / 'bench' / 'real_bench.py', '--summary', '--out', res])
    md = (res / 'real.md').read_text()
    assert 'acc 95.0% [93.0, 97.0]' in md and 'X 2020: 99.0%' in md and '200 (2.0×;' in md and 'not run yet' in md
    assert 'agreement 0.991; INT8 is the default' in md
    assert '| accuracy | 95.0% [93.0, 97.0] |' in (res / 'neu.md').read_text()      # the detail table, from the same numbers


def test_export_bench_smoke(tmp_path):
    run([ROOT / 'bench' / 'export_bench.py', '--smoke', '--work', tmp_path / 'work', '--out', tmp_path / 'res'])
    r = json.loads((tmp_path / 'res' / 'export_smoke.json').read_text())
    assert r['service']['errors'] == 0 and 'onnx_int8_static' in r['variants']
    assert all(0 <= v.get('agreement', 1) <= 1 for v in r['variants'].values())
    assert r['int8']['static']['method'] in ('minmax', 'percentile', 'entropy') and r['int8']['dynamic']['method'] == 'dynamic'
    assert 'INT8 method' in (tmp_path / 'res' / 'export_smoke.md').read_text()


def test_int8_methods_smoke(tmp_path):
    "onnxruntime's quantiser vs NNCF, each run by onnxruntime and OpenVINO (both optional: measured, not shipped)."
    pytest.importorskip('nncf'); pytest.importorskip('openvino')
    run([ROOT / 'bench' / 'int8_methods.py', '--smoke', '--work', tmp_path / 'work', '--out', tmp_path / 'res'])
    r = json.loads((tmp_path / 'res' / 'int8_methods_smoke.json').read_text())
    assert {v['method'] for v in r['rows'].values()} == {'fp32', 'ort_int8', 'nncf_int8', 'nncf_int8_accuracy_control'}
    assert all(0 <= v['valid_agreement'] <= 1 and v['b1_img_s'] > 0 for v in r['rows'].values())


def test_recipe_benchmarks_smoke(tmp_path):
    "The frozen-feature sweep, the fine-tuning ablation, cross-validation and the speed table (anomaly row included) run end to end in smoke mode."
    from conftest import real_dataset
    real_dataset('neu-det')
    env_out = ['--work', tmp_path / 'work', '--out', tmp_path / 'res']
    run([ROOT / 'bench' / 'probe_sweep.py', 'neu', '--smoke', '--settings', 'lite0:64:none,lite0:64:hflip', *env_out])
    s = json.loads((tmp_path / 'res' / 'smoke' / 'probe_sweep_neu.json').read_text())
    assert [r['tta'] for r in s['rows']] == ['none', 'hflip'] and all(0 <= r['test_accuracy'] <= 1 for r in s['rows'])
    run([ROOT / 'bench' / 'ablation.py', 'synth-cls', '--smoke', *env_out])
    ab = json.loads((tmp_path / 'res' / 'smoke' / 'ablation_synth-cls.json').read_text())
    assert [r['method'] for r in ab['rows']] == ['fastai', 'fastai', 'features', 'finetune']
    run([ROOT / 'bench' / 'real_bench.py', 'neu', '--smoke', '--cv', '2', *env_out])
    cv = json.loads((tmp_path / 'res' / 'smoke' / 'neu.json').read_text())['cv']
    assert cv['k'] == 2 and len(cv['accuracies']) == 2 and cv['min'] <= cv['mean']
    run([ROOT / 'bench' / 'speed.py', '--smoke', '--out', tmp_path / 'res'])
    sp = json.loads((tmp_path / 'res' / 'smoke' / 'speed.json').read_text())
    assert {r['tta'] for r in sp['rows']} == {'none', 'hflip'} and all(r['infer_onnx_img_s'] > 0 for r in sp['rows'])
    pc = [r for r in sp['rows'] if r['arch'] == 'patchcore']                      # the anomaly row: a whole batch-1 prediction, timed
    assert len(pc) == 1 and pc[0]['bank'] == 4576 and pc[0]['infer_onnx_b1_ms'] > 0 and 'train_img_s' not in pc[0]


def test_demo_unet_smoke(tmp_path):
    run([ROOT / 'bench' / 'demo_unet.py', '--smoke', '--work', tmp_path / 'work', '--out', tmp_path / 'res'])
    res = json.loads((tmp_path / 'res' / 'smoke' / 'demo_unet.json').read_text())
    assert len(res['rows']) == 1 and 0 <= res['rows'][0]['dice_defective'] <= 1 and res['rows'][0]['dice_by_class']
    assert 'Command: `python bench/demo_unet.py --smoke`' in (tmp_path / 'res' / 'smoke' / 'demo_unet.md').read_text()


def test_frozen_encoder_smoke(tmp_path):
    "The frozen-encoder U-Net benchmark trains, scores the test split and writes its table beside the fine-tuned row."
    from conftest import real_dataset
    real_dataset('magnetic-tile')
    run([ROOT / 'bench' / 'frozen_encoder.py', '--smoke', '--work', tmp_path / 'work', '--out', tmp_path / 'res'])
    r = json.loads((tmp_path / 'res' / 'smoke' / 'mt-frozen-encoder.json').read_text())
    assert r['smoke'] and r['n_test'] > 0 and 0 <= r['iou_defective'] <= 1 and len(r['valid_dice']) == 2
    assert r['epochs'].endswith('encoder frozen throughout') and r['command'] == 'python bench/frozen_encoder.py --smoke'
    assert '| encoder frozen throughout (this run) |' in (tmp_path / 'res' / 'smoke' / 'mt-frozen-encoder.md').read_text()
