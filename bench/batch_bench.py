"""Batch inference on this machine: `predict_many` with engine 'local' and engine 'ray' on the same folder of synthetic
images, the tables compared row for row.

    python bench/batch_bench.py [--smoke] [--n 2000] [--arch efficientnet_lite0 --size 160]

The bundle is trained on a few synthetic images (frozen-feature head for the Lite backbones, one epoch for the others)
in a child process, so this process, which runs both engines, never imports torch. Ray runs locally on this machine's
cores (127.0.0.1 only); its start-up is timed apart from the jobs. Writes bench/results/batch.json and batch.md
(--smoke: a few images, a tiny CNN, under OUT/smoke).
"""
import argparse, json, os, platform, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / 'bench' / 'results'


def machine():
    cpu = platform.processor() or platform.machine()
    try: cpu = next(l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name'))
    except (OSError, StopIteration): pass
    import onnxruntime, ray
    return dict(cpu=cpu, cores=os.cpu_count(), python=platform.python_version(), onnxruntime=onnxruntime.__version__, ray=ray.__version__,
                load_avg=[round(x, 2) for x in os.getloadavg()])


def make_bundle(work:Path, arch:str, size:int) -> Path:
    "Train a small classifier on 5 synthetic images per class and export it, in a child process (torch stays there)."
    b = work / f'bundle-{arch}-{size}'
    if (b / 'bundle.json').exists(): return b
    method = "'features'" if arch.startswith('efficientnet') else 'None'
    code = (f"from defect_nb.synth import synthesize; from defect_nb.train import train; from defect_nb.export import export_bundle\n"
            f"synthesize({str(work / 'train')!r}, 5, 64, seed=0, progress=False)\n"
            f"r = train({str(work / 'train')!r}, 'classify', {arch!r}, method={method}, epochs=1, size={size}, bs=8, out={str(work / 'run')!r}, "
            f"num_workers=0, progress=False, overwrite=True)\n"
            f"export_bundle(r.path, {str(b)!r}, report=False)")
    subprocess.run([sys.executable, '-c', code], check=True, cwd=ROOT)
    return b


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--smoke', action='store_true', help='a few images and a tiny CNN: checks the script, measures nothing')
    ap.add_argument('--n', type=int, default=2000, help='images (default 2000)')
    ap.add_argument('--image-size', type=int, default=128, help='side of the synthetic images (default 128)')
    ap.add_argument('--arch', default='efficientnet_lite0'); ap.add_argument('--size', type=int, default=160, help='model input size')
    ap.add_argument('--batch-size', type=int, default=32)
    ap.add_argument('--work', default=str(ROOT / 'runs' / 'bench' / 'batch'), help='images, bundle and result tables')
    ap.add_argument('--out', default=str(RESULTS))
    a = ap.parse_args()
    if a.smoke: a.n, a.image_size, a.arch, a.size, a.batch_size = 21, 64, 'small_cnn', 48, 4
    import pandas as pd, ray
    from defect_nb import batch
    from defect_nb.synth import synthesize
    work = Path(a.work) / ('smoke' if a.smoke else ''); work.mkdir(parents=True, exist_ok=True)
    per_class = -(-a.n // 7)
    images = work / f'images-{per_class}x{a.image_size}'
    if not (images / 'labels.csv').exists(): synthesize(images, per_class, a.image_size, seed=1, progress=not a.smoke)
    folder = images / 'images'
    bundle = make_bundle(work, a.arch, a.size)
    n = len(batch.list_images(folder))
    m0 = machine(); res = dict(images=n, image_size=a.image_size, arch=a.arch, size=a.size, batch_size=a.batch_size, smoke=a.smoke)
    outs = work / 'out'; outs.mkdir(exist_ok=True)
    for f in outs.iterdir(): f.unlink() if f.is_file() else __import__('shutil').rmtree(f)

    def job(name, src=folder, **kw):
        t = time.perf_counter()
        df = batch.predict_many(src, bundle, out=outs / f'{name}.parquet', batch_size=a.batch_size, progress=not a.smoke, **kw)
        wall = time.perf_counter() - t
        r = dict(images=len(df), errors=int(df.error.notna().sum()), workers=df.attrs['job']['workers'], wall_s=round(wall, 2),
                 images_per_s=round(len(df) / wall, 1))
        print(name, r, flush=True); return df, r

    local, res['local'] = job('local')
    t = time.perf_counter(); started = batch._connect(None, None); res['ray_startup_s'] = round(time.perf_counter() - t, 2)
    try:
        _, res['ray_one_chunk'] = job('ray_chunk', [p for p, _ in batch.list_images(folder)[:a.batch_size]], engine='ray', num_workers=1)
        one, res['ray_1_worker'] = job('ray_1', engine='ray', num_workers=1)
        on_ray, res['ray'] = job('ray', engine='ray')
    finally:
        if started: ray.shutdown()
    res['ray']['end_to_end_s'] = round(res['ray_startup_s'] + res['ray']['wall_s'], 2)
    res['ray']['end_to_end_images_per_s'] = round(n / res['ray']['end_to_end_s'], 1)
    try:
        pd.testing.assert_frame_equal(local, on_ray, check_exact=True); pd.testing.assert_frame_equal(local, one, check_exact=True)
        res['identical'] = True
    except AssertionError as e: res['identical'] = False; res['difference'] = str(e)[:500]
    res['per_worker_images_per_s'] = res['ray_1_worker']['images_per_s']
    # the steady rate of one worker: its job's time less that of a one-chunk job (actor start, model load, the driver's work)
    res['job_overhead_s'] = res['ray_one_chunk']['wall_s']
    d = res['ray_1_worker']['wall_s'] - res['ray_one_chunk']['wall_s']
    res['per_worker_steady_images_per_s'] = round((n - a.batch_size) / d, 1) if d > 1 else None       # too few images to tell
    res['torch_imported'] = 'torch' in sys.modules
    res['machine'] = dict(m0, load_avg_end=[round(x, 2) for x in os.getloadavg()])
    res['command'] = 'python bench/batch_bench.py' + (' --smoke' if a.smoke else '')
    out = Path(a.out) / ('smoke' if a.smoke else ''); out.mkdir(parents=True, exist_ok=True)
    (out / 'batch.json').write_text(json.dumps(res, indent=2))
    mc = res['machine']
    md = [f"`predict_many` on {n:,} synthetic images ({a.image_size} px PNG) with the {a.arch} classifier bundle ({a.size} px, FP32), "
          f"batch {a.batch_size}; local Ray on 127.0.0.1. Tables identical row for row: {'yes' if res['identical'] else 'NO'}.", '',
          '| engine | workers | images | wall s | images/s |', '|---|---|---|---|---|',
          f"| local | 1 process, onnxruntime on all cores | {n} | {res['local']['wall_s']} | {res['local']['images_per_s']} |",
          f"| ray | 1 | {n} | {res['ray_1_worker']['wall_s']} | {res['ray_1_worker']['images_per_s']} |",
          f"| ray | {res['ray']['workers']} | {n} | {res['ray']['wall_s']} | {res['ray']['images_per_s']} |",
          f"| ray, with its start-up ({res['ray_startup_s']} s) | {res['ray']['workers']} | {n} | {res['ray']['end_to_end_s']} | {res['ray']['end_to_end_images_per_s']} |",
          '', f"Per worker (one core, one onnxruntime thread): {res['per_worker_images_per_s']} images/s with the job's fixed cost "
          f"({res['job_overhead_s']} s: actor start, model load; a one-chunk job), {res['per_worker_steady_images_per_s']} images/s without it.",
          f"Machine: {mc['cpu']}, {mc['cores']} CPU cores (load average {mc['load_avg'][0]} at the start, {mc['load_avg_end'][0]} at the end: "
          f"other jobs shared the machine), Python {mc['python']}, onnxruntime {mc['onnxruntime']}, Ray {mc['ray']}.", '',
          f"Command: `{res['command']}`"]
    (out / 'batch.md').write_text('\n'.join(md) + '\n')
    print('\n'.join(md))
    if not res['identical']: sys.exit('the engines disagree: ' + res['difference'])


if __name__ == '__main__': main()
