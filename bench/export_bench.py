"""Export benchmark: PyTorch eager FP32 vs ONNX FP32 vs ONNX INT8 (static and dynamic) for the default classifier, and the
HTTP service under 1,000 /predict requests at concurrency 8 on loopback.

    python bench/export_bench.py [--data PATH_TO_NEU_DET] [--epochs 3] [--requests 1000] [--smoke]

Writes bench/results/export.json and bench/results/export.md. --smoke: synthetic data, tiny settings (CI).
"""
import argparse, concurrent.futures as cf, json, os, platform, shutil, socket, subprocess, sys, time
from pathlib import Path
import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def machine():
    import torch, onnxruntime
    return dict(cpu=platform.processor() or platform.machine(), cores=os.cpu_count(), python=platform.python_version(),
                torch=torch.__version__, onnxruntime=onnxruntime.__version__)


def service_bench(bundle, n, conc, image_bytes):
    import httpx
    s = socket.socket(); s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]; s.close()
    exe = Path(sys.executable).parent / 'defect-nb'
    p = subprocess.Popen([str(exe), 'serve', '--model', str(bundle), '--port', str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f'http://127.0.0.1:{port}'
    try:
        for _ in range(300):
            try:
                if httpx.get(url + '/health', timeout=1).status_code == 200: break
            except httpx.HTTPError: time.sleep(0.2)
        client = httpx.Client(timeout=60, limits=httpx.Limits(max_connections=conc))
        def one(i):
            t = time.perf_counter(); r = client.post(url + '/predict', files={'file': ('x.png', image_bytes, 'image/png')}); return r.status_code, time.perf_counter() - t
        for i in range(10): one(i)
        t0 = time.perf_counter()
        with cf.ThreadPoolExecutor(conc) as ex: res = list(ex.map(one, range(n)))
        wall = time.perf_counter() - t0
        lat = np.array([l for _, l in res]) * 1000
        return dict(requests=n, concurrency=conc, rps=n / wall, p50_ms=float(np.percentile(lat, 50)), p99_ms=float(np.percentile(lat, 99)),
                    errors=int(sum(s != 200 for s, _ in res)))
    finally:
        p.terminate(); p.wait(10)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--data', default=os.environ.get('DEFECT_NB_DATASETS', '') and str(Path(os.environ['DEFECT_NB_DATASETS']) / 'neu-det'))
    ap.add_argument('--epochs', type=int, default=3); ap.add_argument('--size', type=int, default=160)
    ap.add_argument('--requests', type=int, default=1000); ap.add_argument('--out', default=str(ROOT / 'bench' / 'results'))
    ap.add_argument('--work', default=str(ROOT / 'runs' / 'bench')); ap.add_argument('--smoke', action='store_true')
    ap.add_argument('--reuse', action='store_true', help='reuse a finished run in --work instead of training again')
    a = ap.parse_args()
    from defect_nb.synth import synthesize
    from defect_nb.train import train_classifier
    from defect_nb.evaluate import evaluate, run_table
    from defect_nb.export import export_bundle
    work = Path(a.work); work.mkdir(parents=True, exist_ok=True)
    if a.smoke:
        synthesize(work / 'syn', 6, 96, progress=False); data, epochs, size, nreq, name = work / 'syn', 1, 64, 40, 'synthetic (smoke)'
    else:
        if not a.data or not Path(a.data).is_dir(): sys.exit("NEU-DET not found: pass --data or set DEFECT_NB_DATASETS")
        data, epochs, size, nreq, name = a.data, a.epochs, a.size, a.requests, 'NEU-DET'
    run = work / ('smoke-run' if a.smoke else 'neu-lite0')
    from defect_nb.train import load_config
    if a.reuse and (run / 'config.json').exists() and load_config(run).get('epochs_done'):
        train_s = float(__import__('pandas').read_csv(run / 'history.csv').seconds.sum())     # training time as recorded
    else:
        t = time.perf_counter()
        train_classifier(data, epochs=epochs, size=size, out=run, overwrite=True, progress=False, seed=42)
        train_s = time.perf_counter() - t
    ev = evaluate(run, progress=False)
    rows, int8, defaults = {}, {}, {}
    for mode in ('static', 'dynamic'):
        m = export_bundle(run, work / f'bundle-{mode}', quantize_mode=mode, overwrite=True, report_n=40 if a.smoke else None, keep_int8=True)
        rows.update(m['report']); defaults[mode] = m['default_variant']; int8[mode] = {k: v for k, v in m['int8'].items() if k != 'search'}
    img = Path(run_table(run, 'test').image.iloc[0]).read_bytes()
    svc = service_bench(work / 'bundle-static', nreq, 8, img); svc['variant'] = defaults['static']
    cfg = load_config(run); method = cfg.get('method', 'fastai')
    res = dict(dataset=name, arch=cfg['arch'], method=method, options=cfg.get('options'), size=size,
               epochs='frozen features + fitted head' if method == 'features' else f"1 frozen + {epochs}", train_seconds=round(train_s, 1),
               test_accuracy=ev.metrics['accuracy'], n_test=ev.metrics['n'], variants=rows, int8=int8, service=svc, machine=machine(),
               command='python bench/export_bench.py' + (' --smoke' if a.smoke else f' --data {a.data} --epochs {epochs}'))
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    stem = 'export_smoke' if a.smoke else 'export'
    (out / f'{stem}.json').write_text(json.dumps(res, indent=2, default=float))
    pt = rows['pytorch_fp32']
    lines = [f"Default classifier ({res['arch']}, method {method}, {size} px) on {name}, trained ({res['epochs']}) in {train_s:.0f} s (epoch time as recorded in history.csv when reused); "
             f"{res['n_test']} test images. Machine: {res['machine']['cores']} CPU cores, torch {res['machine']['torch']}, "
             f"onnxruntime {res['machine']['onnxruntime']}.", '',
             '| model | INT8 method | file MB | test accuracy | agreement with FP32 (test) | valid agreement (bar 0.99) | INT8 is the default | batch 1 img/s | p50 ms | p95 ms | batch 32 img/s | × PyTorch (batch 32) |',
             '|---|---|---|---|---|---|---|---|---|---|---|---|']
    for k, v in rows.items():
        i8 = int8.get(k.rsplit('_', 1)[-1]) if k.startswith('onnx_int8') else None
        method = f"{i8['method']}, {len(i8.get('excluded_nodes', []))} nodes FP32" if i8 and i8['mode'] == 'static' else i8['method'] if i8 else '—'
        valid = f"{i8['agreement']:.4f}" if i8 else '1.0000' if k == 'onnx_fp32' else '—'
        default = ('yes' if i8.get('default', i8['passes']) else 'no: FP32') if i8 else '—'
        lines.append(f"| {k} | {method} | {v.get('mb', float('nan')):.1f} | {v['accuracy']:.4f} | {v.get('agreement', 1):.4f} | {valid} | {default} | {v['b1_img_s']:.1f} | "
                     f"{v['b1_p50_ms']:.1f} | {v['b1_p95_ms']:.1f} | {v['batch_img_s']:.1f} | {v['batch_img_s'] / pt['batch_img_s']:.2f} |")
    lines += ['', *(f"INT8 {mode}: {v['reason']}." for mode, v in int8.items())]
    lines += ['', f"Service (`defect-nb serve`, 1 worker, the bundle's default variant: {svc['variant'].upper()}) under {svc['requests']} `/predict` requests at concurrency "
              f"{svc['concurrency']} on 127.0.0.1: {svc['rps']:.1f} requests/s, p50 {svc['p50_ms']:.0f} ms, p99 {svc['p99_ms']:.0f} ms, {svc['errors']} errors.",
              '', f"Command: `{res['command']}`"]
    (out / f'{stem}.md').write_text('\n'.join(lines) + '\n')
    print('\n'.join(lines))


if __name__ == '__main__':
    main()
