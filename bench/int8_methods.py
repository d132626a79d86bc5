"""INT8 methods on the same model: onnxruntime's quantiser as `export_bundle` drives it (calibration method chosen by
measurement, noisiest nodes left in FP32 until the agreement bar holds) vs NNCF (`nncf.quantize`, and
`nncf.quantize_with_accuracy_control` with agreement with FP32 as its metric), each run by onnxruntime and by OpenVINO.

    python bench/int8_methods.py [--data PATH_TO_NEU_DET] [--size 160] [--tta none] [--smoke]

Agreement (top-1, with the FP32 ONNX model) and accuracy on the validation split (where the bar is checked) and on the
test split; images/s at batch 1 and 32 with 2 threads. Writes bench/results/int8_methods.json and .md (--smoke:
synthetic data, tiny settings, int8_methods_smoke.*).
"""
import argparse, json, os, platform, sys, time
from pathlib import Path
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
THREADS = 2


def ort_run(path):
    from defect_nb.export import ort_session
    s = ort_session(path, THREADS); return lambda x: s.run(None, {'input': x})[0]


def ov_run(path, precision='f32'):
    "OpenVINO on the CPU: precision 'f32' (the model as exported), or the CPU plugin's default ('bf16' where the CPU has AMX)."
    import openvino as ov
    cfg = {'INFERENCE_NUM_THREADS': THREADS, **({'INFERENCE_PRECISION_HINT': 'f32'} if precision == 'f32' else {})}
    c = ov.Core().compile_model(str(path), 'CPU', cfg); return lambda x: c(x)[0]


def probs(run, x, bs=32): return np.concatenate([run(x[i:i + bs]) for i in range(0, len(x), bs)])


def img_s(run, x1, xb, reps=20):
    run(x1); run(xb); t1, tb = [], []
    for _ in range(reps): t = time.perf_counter(); run(x1); t1.append(time.perf_counter() - t)
    for _ in range(max(2, reps // 5)): t = time.perf_counter(); run(xb); tb.append(time.perf_counter() - t)
    return 1 / float(np.median(t1)), len(xb) / float(np.median(tb))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--data', default=os.environ.get('DEFECT_NB_DATASETS', '') and str(Path(os.environ['DEFECT_NB_DATASETS']) / 'neu-det'))
    ap.add_argument('--size', type=int, default=160); ap.add_argument('--tta', default='none')
    ap.add_argument('--work', default=str(ROOT / 'runs' / 'bench')); ap.add_argument('--out', default=str(ROOT / 'bench' / 'results'))
    ap.add_argument('--smoke', action='store_true')
    a = ap.parse_args()
    import nncf, openvino, onnx, onnxruntime
    from defect_nb.train import train, load_config
    from defect_nb.evaluate import run_table
    from defect_nb.core import load_image
    from defect_nb.export import export_bundle, model_inputs, calibration_rows, agreement, quality
    work = Path(a.work); work.mkdir(parents=True, exist_ok=True)
    if a.smoke:
        from defect_nb.synth import synthesize
        synthesize(work / 'syn-int8', 6, 96, progress=False); data, size, name = work / 'syn-int8', 64, 'synthetic (smoke)'
    else:
        if not a.data or not Path(a.data).is_dir(): sys.exit("NEU-DET not found: pass --data or set DEFECT_NB_DATASETS")
        data, size, name = a.data, a.size, 'NEU-DET'
    run = work / f"int8-{'smoke' if a.smoke else 'neu'}-probe-{size}-{a.tta}"
    if not (run / 'config.json').exists() or not load_config(run).get('epochs_done'):
        train(data, 'classify', 'probe', size=size, tta=a.tta, out=run, overwrite=True, progress=False, seed=42)
    cfg = load_config(run); pre = cfg['preprocess']
    t0 = time.perf_counter()
    meta = export_bundle(run, work / f'{run.name}-bundle', quantize_mode='static', report=False, keep_int8=True, overwrite=True)
    ort_s = time.perf_counter() - t0
    b = work / f'{run.name}-bundle'
    valid, test = run_table(run, 'valid').reset_index(drop=True), run_table(run, 'test').reset_index(drop=True)
    xv, xt = (model_inputs([load_image(p) for p in t.image], pre) for t in (valid, test))
    xc = model_inputs([load_image(p) for p in calibration_rows(run, 128).image], pre)
    p32v, p32t = probs(ort_run(b / 'model.onnx'), xv), probs(ort_run(b / 'model.onnx'), xt)
    models = {'fp32': (b / 'model.onnx', 0.0), 'ort_int8': (b / 'model.int8.onnx', ort_s)}
    fp32 = onnx.load(str(b / 'model.onnx'))
    calib = nncf.Dataset(list(xc), lambda x: {'input': x[None]})
    t0 = time.perf_counter(); q = nncf.quantize(fp32, calib, subset_size=len(xc))
    onnx.save(q, str(work / 'nncf.onnx')); models['nncf_int8'] = (work / 'nncf.onnx', time.perf_counter() - t0)

    def validate(model, data):
        import onnxruntime as ort
        s = ort.InferenceSession(model.SerializeToString(), providers=['CPUExecutionProvider'])
        data = list(data); idx = [i for i, _ in data]                 # NNCF ranks on subsets: compare with the same FP32 rows
        x = np.stack([x for _, x in data]); p = np.concatenate([s.run(None, {'input': x[i:i + 32]})[0] for i in range(0, len(x), 32)])
        return agreement(p32v[idx], p), None
    from nncf.quantization.advanced_parameters import AdvancedAccuracyRestorerParameters
    t0 = time.perf_counter()
    qa = nncf.quantize_with_accuracy_control(fp32, calib, nncf.Dataset(list(enumerate(xv)), lambda it: {'input': it[1][None]}), validate,
                                             max_drop=0.01, subset_size=len(xc),
                                             advanced_accuracy_restorer_parameters=AdvancedAccuracyRestorerParameters(max_num_iterations=10, ranking_subset_size=100))
    onnx.save(qa, str(work / 'nncf_ac.onnx')); models['nncf_int8_accuracy_control'] = (work / 'nncf_ac.onnx', time.perf_counter() - t0)
    rows = {}
    for k, (path, secs) in models.items():
        for engine, mk in (('onnxruntime', ort_run), ('openvino', ov_run), ('openvino, CPU default precision', lambda p: ov_run(p, None))):
            r = mk(path); pv, pt = probs(r, xv), probs(r, xt); b1, b32 = img_s(r, xt[:1], np.repeat(xt[:1], 32, 0))
            rows[f'{k} / {engine}'] = dict(method=k, engine=engine, quantize_s=round(secs, 1), valid_agreement=agreement(p32v, pv),
                                           test_agreement=agreement(p32t, pt), valid_accuracy=quality(pv, valid, cfg)['accuracy'],
                                           test_accuracy=quality(pt, test, cfg)['accuracy'], b1_img_s=b1, b32_img_s=b32,
                                           mb=os.path.getsize(path) / 2**20)
    res = dict(dataset=name, arch='probe', backbone=cfg['options'].get('backbone'), tta=cfg['options'].get('tta'), size=size,
               n_valid=len(valid), n_test=len(test), n_calibration=len(xc), threads=THREADS, ort_search=meta['int8'], rows=rows,
               machine=dict(cores=os.cpu_count(), python=platform.python_version(), onnxruntime=onnxruntime.__version__,
                            nncf=nncf.__version__, openvino=openvino.__version__,
                            openvino_default_precision=openvino.Core().get_property('CPU', 'INFERENCE_PRECISION_HINT').get_type_name()),
               command='python bench/int8_methods.py' + (' --smoke' if a.smoke else f' --data {a.data} --size {size} --tta {a.tta}'))
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True); stem = 'int8_methods_smoke' if a.smoke else 'int8_methods'
    (out / f'{stem}.json').write_text(json.dumps(res, indent=2, default=float))
    s = meta['int8']
    lines = [f"INT8 methods on the same model: probe classifier ({res['backbone']}, {size} px, tta {res['tta']}) on {name}; "
             f"{len(xc)} calibration images from the training split, {len(valid)} validation and {len(test)} test images; "
             f"{THREADS} threads. Machine: {res['machine']['cores']} CPU cores shared with other jobs, onnxruntime "
             f"{res['machine']['onnxruntime']}, nncf {res['machine']['nncf']}, openvino {res['machine']['openvino']}.", '',
             f"onnxruntime search: method {s['method']} (agreement by method: "
             + ', '.join(f"{m} {v['agreement']:.4f}" for m, v in s['methods'].items())
             + f"), {len(s['excluded_nodes'])} nodes in FP32; {s['reason']}.", '',
             '| INT8 method | engine | valid agreement | test agreement | valid acc | test acc | batch 1 img/s | batch 32 img/s | MB | quantise s |',
             '|---|---|---|---|---|---|---|---|---|---|']
    for v in rows.values():
        lines.append(f"| {v['method']} | {v['engine']} | {v['valid_agreement']:.4f} | {v['test_agreement']:.4f} | {v['valid_accuracy']:.4f} | "
                     f"{v['test_accuracy']:.4f} | {v['b1_img_s']:.1f} | {v['b32_img_s']:.1f} | {v['mb']:.1f} | {v['quantize_s']} |")
    lines += ['', f"OpenVINO runs with INFERENCE_PRECISION_HINT f32 (the model as exported) and, in the rows marked 'CPU default "
              f"precision', with the CPU plugin's default on this machine: {res['machine']['openvino_default_precision']}. "
              "Speeds were measured while other jobs used the same 2 cores: compare rows within this table only.",
              '', f"Command: `{res['command']}`"]
    (out / f'{stem}.md').write_text('\n'.join(lines) + '\n'); print('\n'.join(lines))


if __name__ == '__main__':
    main()
