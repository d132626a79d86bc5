"""Load test of the HTTP service: N `/predict` requests at concurrency C, about 80% good images and 20% hostile files
(tests/corpus.py: empty, text, truncated, PNG bomb, GIF, NaN TIFF...), against `defect-nb serve` on 127.0.0.1.

    python bench/load_test.py --model BUNDLE [--requests 2000] [--concurrency 16]
    python bench/load_test.py --smoke                                    # builds a tiny bundle here, 200 requests
    python bench/load_test.py --model BUNDLE --url http://127.0.0.1:8000 [--pid PID]   # a server already running

Checks: every good image answered 200 with the same class as a local `defect_nb.inference.Predictor` on the same
bytes, every hostile file a 4xx JSON {error, message}, zero 5xx and zero connection errors, and the server's resident
memory (VmRSS from /proc/PID/status), taken after a warm-up (300 requests at full concurrency, every image at least
once), grows less than --max-rss-growth percent by the end. Writes load.json and load.md to --out (default
bench/results; load_smoke.* with --smoke); exits 1 when a check fails.
"""
import argparse, concurrent.futures as cf, json, os, platform, socket, subprocess, sys, tempfile, threading, time
from pathlib import Path
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'tests'))


def images(seed=0):
    "(good, bad): lists of (name, bytes). Good: synthetic parts of every class as PNG and JPEG, and the corpus's good files."
    import cv2
    from defect_nb.synth import synth_one, CLASSES
    from corpus import GOOD, BAD
    good = []
    for i, c in enumerate(CLASSES):
        img = synth_one(c, 96, seed + i)[0]
        good += [(f'{c}.png', cv2.imencode('.png', img)[1].tobytes()), (f'{c}.jpg', cv2.imencode('.jpg', img)[1].tobytes())]
    good += [(n, d) for n, (d, _) in sorted(GOOD.items())]
    return good, [(n, d) for n, (d, _) in sorted(BAD.items())]


def rss_kb(pid):
    "Resident memory of process `pid`, in kB (VmRSS of /proc/PID/status); None where it cannot be read."
    try:
        for line in Path(f'/proc/{pid}/status').read_text().splitlines():
            if line.startswith('VmRSS:'): return int(line.split()[1])
    except OSError: return None


def start_server(bundle, log):
    "Start `defect-nb serve` on a free port of 127.0.0.1; returns (process, url) once /health answers."
    import httpx
    s = socket.socket(); s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]; s.close()
    exe = Path(sys.executable).parent / 'defect-nb'
    p = subprocess.Popen([str(exe), 'serve', '--model', str(bundle), '--port', str(port)], stdout=log, stderr=subprocess.STDOUT)
    url = f'http://127.0.0.1:{port}'
    for _ in range(300):
        if p.poll() is not None: break
        try:
            if httpx.get(url + '/health', timeout=1).status_code == 200: return p, url
        except httpx.HTTPError: time.sleep(0.2)
    p.kill(); p.wait(10)
    raise SystemExit(f"server did not start; its log: {log.name}")


def smoke_bundle(work):
    "A tiny classifier bundle (small_cnn, 48 px, one epoch on 5 synthetic images per class), reused when present."
    from defect_nb.synth import synthesize
    from defect_nb.train import train_classifier
    from defect_nb.export import export_bundle
    work = Path(work); b = work / 'bundle'
    if (b / 'bundle.json').exists(): return b
    synthesize(work / 'syn', 5, 64, seed=0, progress=False)
    r = train_classifier(work / 'syn', 'small_cnn', epochs=1, size=48, bs=8, out=work / 'run', overwrite=True, num_workers=0, progress=False)
    export_bundle(r.path, b, report=False, overwrite=True)
    return b


def schedule(n, good, bad, bad_frac, seed):
    "Which item each request sends: ('good'|'bad', index), about `bad_frac` of them bad, in a seeded random order."
    rng = np.random.default_rng(seed)
    return [('bad', int(rng.integers(len(bad)))) if rng.random() < bad_frac else ('good', int(rng.integers(len(good)))) for _ in range(n)]


def run(url, pid, bundle, n, conc, bad_frac=0.2, seed=0, warmup=None):
    "Send the requests; returns the result dict (figures, checks, failures)."
    import httpx
    from defect_nb.inference import Predictor
    good, bad = images(seed)
    pred = Predictor.load(bundle)
    local = [pred.predict(d, filename=name) for name, d in good]
    expected = [r['prediction'] for r in local]
    client = httpx.Client(timeout=120, limits=httpx.Limits(max_connections=conc, max_keepalive_connections=conc))

    def one(item):
        kind, i = item
        name, data = (good if kind == 'good' else bad)[i]
        t = time.perf_counter()
        try: r = client.post(url + '/predict', files={'file': (name, data, 'application/octet-stream')})
        except httpx.HTTPError as e: return kind, i, None, f'{type(e).__name__}: {e}', time.perf_counter() - t
        try: body = r.json()
        except ValueError: body = r.text[:200]
        return kind, i, r.status_code, body, time.perf_counter() - t

    def send(items):
        with cf.ThreadPoolExecutor(conc) as ex: return list(ex.map(one, items))

    # warm-up at full concurrency: every item at least once, so the allocator has seen the largest images and every thread
    w = [('good', i) for i in range(len(good))] + [('bad', i) for i in range(len(bad))]
    w = (w * (1 + (warmup or 0) // len(w)))[:max(len(w), warmup or 0)]
    warm = send(w)
    rss0 = rss_kb(pid) if pid else None
    peak = [rss0 or 0]; stop = threading.Event()
    def sample():
        while not stop.wait(0.25): peak[0] = max(peak[0], rss_kb(pid) or 0)
    if pid: threading.Thread(target=sample, daemon=True).start()
    t0 = time.perf_counter()
    res = send(schedule(n, good, bad, bad_frac, seed))
    wall = time.perf_counter() - t0
    stop.set(); time.sleep(0.3)                                          # let in-flight cleanup finish before the last sample
    rss1 = rss_kb(pid) if pid else None
    if rss1: peak[0] = max(peak[0], rss1)
    client.close()

    status, failures, dp = {}, [], 0.
    for kind, i, code, body, _ in warm + res:                           # every answer is checked, the warm-up's too
        status[str(code) if code else 'connection error'] = status.get(str(code) if code else 'connection error', 0) + 1
        name = (good if kind == 'good' else bad)[i][0]
        if kind == 'good':
            ok = code == 200 and isinstance(body, dict) and body.get('prediction') == expected[i] and body.get('filename') == name
            if ok:                                             # the probabilities too: an answer meant for another request would differ
                d = max(abs(body['probabilities'][c] - p) for c, p in local[i]['probabilities'].items()); dp = max(dp, d)
                ok = d < 1e-4
            if not ok: failures.append(f"good {name}: {code} {str(body)[:150]} (local Predictor says {expected[i]})")
        if kind == 'bad' and not (code and 400 <= code < 500 and isinstance(body, dict) and body.get('error') and body.get('message')):
            failures.append(f"bad {name}: {code} {str(body)[:150]} (expected a 4xx JSON error)")
    lat = np.array([l for *_, l in res]) * 1000
    n_good = sum(k == 'good' for k, *_ in warm + res); n_all = len(warm) + n
    out = dict(requests=n, concurrency=conc, good=n_good, bad=n_all - n_good, warmup=len(w), seconds=round(wall, 2), rps=round(n / wall, 1),
               p50_ms=round(float(np.percentile(lat, 50)), 1), p99_ms=round(float(np.percentile(lat, 99)), 1),
               max_ms=round(float(lat.max()), 1), status=dict(sorted(status.items())),
               server_5xx=sum(v for k, v in status.items() if k.startswith('5')), connection_errors=status.get('connection error', 0),
               good_correct=n_good - sum(f.startswith('good') for f in failures), max_prob_diff=float(f'{dp:.2g}'),
               classes_seen=len({expected[i] for k, i, *_ in res if k == 'good'}), bad_4xx=(n_all - n_good) - sum(f.startswith('bad') for f in failures),
               rss_start_mb=round(rss0 / 1024, 1) if rss0 else None, rss_end_mb=round(rss1 / 1024, 1) if rss1 else None,
               rss_peak_mb=round(peak[0] / 1024, 1) if pid and peak[0] else None,
               rss_growth_pct=round(100 * (rss1 - rss0) / rss0, 2) if rss0 and rss1 else None, failures=failures[:50])
    return out


def markdown(r):
    rss = (f"{r['rss_start_mb']} → {r['rss_end_mb']} MB ({r['rss_growth_pct']:+.1f}%, peak {r['rss_peak_mb']} MB)"
           if r['rss_growth_pct'] is not None else 'not measured (no server pid)')
    rows = [('requests measured (after warm-up)', f"{r['requests']} (after {r['warmup']})"),
            ('concurrency', r['concurrency']), ('requests/s', r['rps']), ('latency p50 / p99 / max', f"{r['p50_ms']} / {r['p99_ms']} / {r['max_ms']} ms"),
            ('answers checked: good / hostile', f"{r['good']} / {r['bad']} (warm-up included)"),
            ('status counts (warm-up included)', ', '.join(f"{k}: {v}" for k, v in r['status'].items())),
            ('good answered with the local class', f"{r['good_correct']} of {r['good']} ({r['classes_seen']} classes; largest probability difference "
                                                    f"from the local Predictor {r['max_prob_diff']:.1g})"), ('hostile answered 4xx', f"{r['bad_4xx']} of {r['bad']}"),
            ('5xx / connection errors', f"{r['server_5xx']} / {r['connection_errors']}"), ('server RSS after warm-up → end', rss),
            ('checks', 'passed' if r['passed'] else 'FAILED: ' + '; '.join(r['problems']))]
    m = r['machine']
    md = r.get('model') or {}
    return '\n'.join([f"`defect-nb serve` (1 worker, FP32) on 127.0.0.1 under a mix of good images and hostile files. "
                      + (f"Model: {md['arch']}, {md['task']}, {md['size']} px (bundle `{md['name']}`). " if md else '')
                      + f"Machine: {m['cores']} CPU cores, Python {m['python']}, onnxruntime {m['onnxruntime']}."
                      + (f" {r['note']}" if r.get('note') else ''), '',
                      '| measure | value |', '|---|---|'] + [f"| {k} | {v} |" for k, v in rows] + ['', f"Command: `{r['command']}`"]) + '\n'


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--model', help='bundle folder (the server serves it, and the local Predictor checks the answers)')
    ap.add_argument('--url', help='a server already running (default: start `defect-nb serve --model MODEL` here)')
    ap.add_argument('--pid', type=int, help='with --url: the server process, for its memory')
    ap.add_argument('--requests', type=int, help='measured requests (default 2000; 200 with --smoke)')
    ap.add_argument('--concurrency', type=int, default=16)
    ap.add_argument('--bad-frac', type=float, default=0.2, help='share of hostile files (default 0.2)')
    ap.add_argument('--warmup', type=int, default=300, help='warm-up requests at full concurrency, every image at least once (default 300)')
    ap.add_argument('--max-rss-growth', type=float, default=10., help='largest RSS growth, percent, that passes (default 10)')
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--note', help='a sentence of context printed with the results (e.g. what else the machine ran)')
    ap.add_argument('--out', default=str(ROOT / 'bench' / 'results'))
    ap.add_argument('--smoke', action='store_true', help='build a tiny bundle in --work and send 200 requests')
    ap.add_argument('--work', default=str(ROOT / 'runs' / 'load'))
    a = ap.parse_args(argv)
    if a.smoke and not a.model: a.model = str(smoke_bundle(a.work))
    if not a.model: ap.error('give --model BUNDLE (or --smoke)')
    n = a.requests or (200 if a.smoke else 2000)
    import onnxruntime
    proc, log = None, None
    if a.url: url, pid = a.url.rstrip('/'), a.pid
    else:
        log = tempfile.NamedTemporaryFile('w+', prefix='load_server_', suffix='.log', delete=False)
        proc, url = start_server(a.model, log); pid = proc.pid
    try: r = run(url, pid, a.model, n, a.concurrency, a.bad_frac, a.seed, a.warmup)
    finally:
        if proc: proc.terminate(); proc.wait(15)
    problems = []
    if r['server_5xx']: problems.append(f"{r['server_5xx']} responses were 5xx")
    if r['connection_errors']: problems.append(f"{r['connection_errors']} connection errors")
    if r['good_correct'] < r['good']: problems.append(f"{r['good'] - r['good_correct']} good images not answered with the local class")
    if r['bad_4xx'] < r['bad']: problems.append(f"{r['bad'] - r['bad_4xx']} hostile files not answered 4xx")
    if r['rss_growth_pct'] is not None and r['rss_growth_pct'] > a.max_rss_growth:
        problems.append(f"RSS grew {r['rss_growth_pct']:.1f}% (limit {a.max_rss_growth}%)")
    args = list(argv if argv is not None else sys.argv[1:])
    if '--note' in args: i = args.index('--note'); del args[i:i + 2]                 # context, not part of the command
    cmd = 'python bench/load_test.py ' + ' '.join(x if x != a.model else 'BUNDLE' for x in args)
    meta = json.loads((Path(a.model) / 'bundle.json').read_text())
    r.update(model=dict(arch=meta.get('arch'), task=meta.get('task'), size=meta.get('input', {}).get('size'), name=Path(a.model).name), note=a.note)
    r.update(passed=not problems, problems=problems, command=cmd.strip(), bundle=str(a.model), url=url,
             machine=dict(cpu=platform.processor() or platform.machine(), cores=os.cpu_count(), python=platform.python_version(),
                          onnxruntime=onnxruntime.__version__))
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    stem = 'load_smoke' if a.smoke else 'load'
    (out / f'{stem}.json').write_text(json.dumps(r, indent=2))
    md = markdown(r); (out / f'{stem}.md').write_text(md)
    print(md)
    for f in r['failures'][:10]: print('  ' + f)
    if log and problems: print(f"server log: {log.name}")
    return 0 if not problems else 1


if __name__ == '__main__':
    sys.exit(main())
