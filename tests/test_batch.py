"""Batch inference (`defect_nb.batch`) on a local Ray of 2 CPUs bound to 127.0.0.1: the Ray engine's table equals the
local engine's row for row, unreadable images are error rows, resume skips what is done, a killed worker loses and
duplicates nothing, no torch anywhere, and Ray leaves no process behind."""
import json, os, shutil, signal, subprocess, sys, time
from contextlib import contextmanager
from pathlib import Path
import pandas as pd
import pytest
from conftest import ROOT

ray = pytest.importorskip('ray', reason='Ray is in the dev extra (pip install -e ".[dev]")')
from defect_nb import batch
from defect_nb.inference import BundleError, read_bundle


@contextmanager
def deadline(seconds):
    "Fail the test, instead of hanging the suite, when a Ray job takes longer than `seconds`."
    def boom(*_): raise TimeoutError(f"a Ray job took more than {seconds} s")
    old = signal.signal(signal.SIGALRM, boom); signal.alarm(seconds)
    try: yield
    finally: signal.alarm(0); signal.signal(signal.SIGALRM, old)


def _ray_children():
    import psutil
    return [p for p in psutil.Process().children(recursive=True)
            if any(k in ' '.join(p.cmdline() or [p.name()]) for k in ('raylet', 'gcs_server', 'ray::', 'default_worker', 'ray/_private'))]


@pytest.fixture(scope='module')
def trigger(tmp_path_factory):
    "The kill switch of the worker-kill test: a worker that finds this file claims it and dies (batch._crash_hook)."
    return tmp_path_factory.mktemp('kill') / 'trigger'


@pytest.fixture(scope='module')
def local_ray(trigger):
    "A local Ray of 2 CPUs on 127.0.0.1, started as predict_many starts one; shut down after the module, processes checked."
    assert not ray.is_initialized()
    old = {k: os.environ.get(k) for k in ('DEFECT_NB_TEST_KILL_WORKER',)}
    os.environ['DEFECT_NB_TEST_KILL_WORKER'] = str(trigger)         # inherited by the raylet and its workers
    with deadline(120): assert batch._connect(None, 2)
    try: yield ray
    finally:
        ray.shutdown()
        for k, v in old.items():
            if v is None: os.environ.pop(k, None)
            else: os.environ[k] = v
        for _ in range(50):
            if not _ray_children(): break
            time.sleep(0.2)
        left = _ray_children()
        assert not left, f"Ray left processes behind: {[(p.pid, p.name()) for p in left]}"


@pytest.fixture(scope='module')
def images(tmp_path_factory):
    "28 synthetic images in class folders, plus a truncated PNG and a text file named .png."
    from defect_nb.synth import synthesize
    d = tmp_path_factory.mktemp('batch')
    synthesize(d / 'syn', 4, 64, seed=1, progress=False)
    imgs = d / 'syn' / 'images'
    (imgs / 'ok' / 'truncated.png').write_bytes((imgs / 'ok' / 'ok_0000.png').read_bytes()[:150])
    (imgs / 'scratches' / 'notes.png').write_text('not an image')
    return imgs


@pytest.fixture(scope='module')
def local_table(images, bundle, tmp_path_factory):
    "The local engine's table for `images` (batch_size 4): the reference of the Ray runs."
    return batch.predict_many(images, bundle, out=tmp_path_factory.mktemp('ref') / 'local.parquet', batch_size=4, progress=False)


def test_loopback_only(local_ray):
    "The local Ray that predict_many starts listens on 127.0.0.1 only."
    assert {n['NodeManagerAddress'] for n in ray.nodes()} == {'127.0.0.1'}
    assert ray.cluster_resources()['CPU'] == 2


def test_ray_equals_local_row_for_row(local_ray, images, bundle, local_table, tmp_path):
    n = len(batch.list_images(images))
    assert n == 30 and len(local_table) == n                        # count in = count out
    bad = local_table.set_index('filename').error.dropna()
    assert set(bad.index) == {'ok/truncated.png', 'scratches/notes.png'}
    assert 'truncated' in bad['ok/truncated.png'] and 'notes.png' in bad['scratches/notes.png']
    assert local_table.prediction.notna().sum() == n - 2 and local_table.error.isna().sum() == n - 2
    with deadline(240):
        on_ray = batch.predict_many(images, bundle, engine='ray', out=tmp_path / 'ray.parquet', batch_size=4, num_workers=2, progress=False)
    pd.testing.assert_frame_equal(on_ray, local_table, check_exact=True)
    assert list(on_ray.columns) == list(batch.result_columns(read_bundle(bundle)))
    assert list(on_ray.filename) == sorted(on_ray.filename)
    assert on_ray.attrs['job']['workers'] == 2 and on_ray.attrs['job']['rows'] == n
    pd.testing.assert_frame_equal(batch.read_results(tmp_path / 'ray.parquet', read_bundle(bundle)), local_table, check_exact=True)
    assert json.loads((tmp_path / 'ray.parquet.json').read_text())['errors'] == 2
    assert not (tmp_path / 'ray.parquet.parts').exists()


def test_list_file_with_missing_image_on_ray(local_ray, images, bundle, local_table, tmp_path):
    "A list naming a file that is not there: an error row on the Ray engine too, the other rows as the local engine's; CSV out."
    names = list(local_table.filename[:5])
    lst = images / 'todo.txt'; lst.write_text('\n'.join(names + ['gone/away.png']) + '\n')
    try:
        with deadline(240):
            df = batch.predict_many(lst, bundle, engine='ray', out=tmp_path / 'r.csv', batch_size=4, progress=False)
    finally: lst.unlink()
    assert len(df) == 6 and df.set_index('filename').error['gone/away.png'].endswith('does not exist (looked for ' + str(images / 'gone' / 'away.png') + ')')
    pd.testing.assert_frame_equal(df[df.filename != 'gone/away.png'].reset_index(drop=True), local_table.iloc[:5], check_exact=True)
    pd.testing.assert_frame_equal(batch.read_results(tmp_path / 'r.csv', read_bundle(bundle)), df, check_exact=True)


def test_resume_skips_done_rows(local_ray, images, bundle, local_table, tmp_path):
    meta, out = read_bundle(bundle), tmp_path / 'res.parquet'
    lst = images / 'first.txt'; lst.write_text('\n'.join(local_table.filename[:13]))
    try: first = batch.predict_many(lst, bundle, out=out, batch_size=4, progress=False)
    finally: lst.unlink()
    assert len(first) == 13 and list(first.filename[first.error.notna()]) == ['ok/truncated.png']
    # mark a predicted row: if resume predicted it again, the mark would be gone
    marked = first.copy(); i = marked.index[marked.error.isna()][0]; marked.loc[i, 'prediction'] = 'MARK'
    out.write_bytes(batch._to_bytes(marked, 'parquet'))
    with pytest.raises(FileExistsError, match='resume=True'): batch.predict_many(images, bundle, out=out, progress=False)
    with deadline(240):
        full = batch.predict_many(images, bundle, engine='ray', out=out, resume=True, batch_size=4, progress=False)
    job = full.attrs['job']
    assert (job['predicted'], job['kept'], job['rows']) == (30 - 12, 12, 30)    # the 12 good rows kept, the error tried again
    assert full.prediction[i] == 'MARK' and (full.prediction == 'MARK').sum() == 1
    expect = local_table.copy(); expect.loc[i, 'prediction'] = 'MARK'
    pd.testing.assert_frame_equal(full, expect, check_exact=True)
    again = batch.predict_many(images, bundle, out=out, resume=True, progress=False)   # nothing left but the two errors
    assert again.attrs['job']['predicted'] == 2 and len(again) == 30


def test_resume_from_parts_of_an_interrupted_job(images, bundle, local_table, tmp_path):
    "The parts an interrupted job left behind are kept; only the rest is predicted; nothing twice."
    meta, out = read_bundle(bundle), tmp_path / 'cut.csv'
    sink = batch._Sink(out, meta, every=4)
    sink.add([r for r in local_table.iloc[:10].to_dict('records')]); sink.flush()
    (sink.parts / 'job.json').write_text(json.dumps(dict(bundle_sha256=batch.sha256(Path(bundle) / 'bundle.json'))))
    with pytest.raises(FileExistsError, match='interrupted job'): batch.predict_many(images, bundle, out=out, progress=False)
    df = batch.predict_many(images, bundle, out=out, resume=True, batch_size=4, progress=False)
    assert df.attrs['job']['predicted'] == 20 and df.attrs['job']['kept'] == 10 and len(df) == 30
    pd.testing.assert_frame_equal(df, local_table)
    assert not sink.parts.exists()


def test_resume_with_another_bundle_is_refused(images, bundle, tmp_path):
    out = tmp_path / 'x.csv'
    batch.predict_many([str(next(images.rglob('*.png')))], bundle, out=out, progress=False)
    s = json.loads((tmp_path / 'x.csv.json').read_text()); s['bundle_sha256'] = '0' * 64
    (tmp_path / 'x.csv.json').write_text(json.dumps(s))
    with pytest.raises(BundleError, match='another bundle'): batch.predict_many(images, bundle, out=out, resume=True, progress=False)


def test_worker_checks_bundle_bytes(local_ray, bundle):
    "A worker refuses bytes that do not match the driver's bundle.json hash, or a model that does not match bundle.json."
    meta = read_bundle(bundle); sha = batch.sha256(Path(bundle) / 'bundle.json')
    blobs = {n: (Path(bundle) / n).read_bytes() for n in ['bundle.json', *meta['files']]}
    w = batch.BundleWorker([ray.put(blobs)], sha)
    assert w.predictor.task == 'classify'
    with pytest.raises(BundleError, match="driver's SHA-256"): batch.BundleWorker([ray.put(blobs)], 'f' * 64)
    bad = dict(blobs, **{'model.onnx': blobs['model.onnx'][:-10] + b'0123456789'})
    with pytest.raises(BundleError, match='does not match its recorded sha256'): batch.BundleWorker([ray.put(bad)], sha)


def test_killed_worker_loses_and_duplicates_nothing(local_ray, images, bundle, local_table, trigger, tmp_path):
    "A worker dies (os._exit) after predicting its chunk, before returning it: Ray restarts it and runs the chunk again."
    import psutil
    trigger.write_text('kill one worker')
    with deadline(300):
        df = batch.predict_many(images, bundle, engine='ray', out=tmp_path / 'k.parquet', batch_size=4, num_workers=2, progress=False)
    claimed = list(trigger.parent.glob('trigger.*'))
    assert not trigger.exists() and len(claimed) == 1, 'no worker was killed'
    pid = int(claimed[0].suffix[1:])
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert len(df) == 30 and df.filename.is_unique                      # count in = count out, nobody twice
    pd.testing.assert_frame_equal(df, local_table, check_exact=True)


def test_no_torch_in_driver_or_workers(local_ray):
    r = subprocess.run([sys.executable, '-c', "import defect_nb.batch, ray, ray.data, sys; "
                        "assert 'torch' not in sys.modules and 'fastai' not in sys.modules, sorted(m for m in sys.modules if 'torch' in m)[:5]"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr

    @ray.remote
    def in_worker():
        import sys, defect_nb.batch
        return sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'fastai'))
    with deadline(60): assert ray.get(in_worker.remote()) == []


def test_bad_arguments(images, bundle, tmp_path):
    with pytest.raises(ValueError, match="engine must be 'local' or 'ray'"): batch.predict_many(images, bundle, engine='spark', out=tmp_path / 'a.csv')
    with pytest.raises(ValueError, match='.parquet or .csv'): batch.predict_many(images, bundle, out=tmp_path / 'a.json')
    with pytest.raises(FileNotFoundError, match='neither a folder'): batch.predict_many(tmp_path / 'none', bundle, out=tmp_path / 'a.csv')


def test_batch_bench_smoke(tmp_path):
    "bench/batch_bench.py --smoke: both engines on a few images, identical tables, the figures written."
    r = subprocess.run([sys.executable, ROOT / 'bench' / 'batch_bench.py', '--smoke', '--work', tmp_path / 'work', '--out', tmp_path / 'res'],
                       capture_output=True, text=True, timeout=600, cwd=ROOT, env={**os.environ, 'PYTHONWARNINGS': 'ignore'})
    assert r.returncode == 0, (r.stdout[-1500:], r.stderr[-3000:])
    res = json.loads((tmp_path / 'res' / 'smoke' / 'batch.json').read_text())
    assert res['smoke'] and res['identical'] and res['command'].endswith('--smoke')
    assert res['local']['images'] == res['ray']['images'] == res['images'] > 0
    assert res['local']['images_per_s'] > 0 and res['ray']['images_per_s'] > 0
    md = (tmp_path / 'res' / 'smoke' / 'batch.md').read_text()
    assert 'Command: `python bench/batch_bench.py' in md and '| ray |' in md
