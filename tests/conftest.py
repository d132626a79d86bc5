import os, shutil, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def real_dataset(name):
    "The folder of a real dataset; skip (or, in CI, fail) with a clear reason when it is absent."
    from defect_nb.core import find_dataset, DatasetNotFound
    try: return find_dataset(name)
    except DatasetNotFound as e:
        if os.environ.get('CI') == 'true': pytest.fail(f"CI must run the real-data tests: {e}")
        pytest.skip(f"real data not available: {e}")


@pytest.fixture
def cli(tmp_path):
    "Run the installed `defect-nb` console script in a temporary folder; returns CompletedProcess."
    exe = shutil.which('defect-nb', path=str(BIN)) or 'defect-nb'
    def run(*args, cwd=None, timeout=300, env=None):
        return subprocess.run([exe, *map(str, args)], capture_output=True, text=True, cwd=cwd or tmp_path,
                              timeout=timeout, env={**os.environ, **(env or {})})
    return run


@pytest.fixture(scope='session')
def synth_small(tmp_path_factory):
    "A small synthetic dataset (7 classes × 8 images, 64 px), shared by the tests that only read it."
    from defect_nb.synth import synthesize
    d = tmp_path_factory.mktemp('synth') / 'small'
    synthesize(d, 8, 64, seed=0, progress=False)
    return d


def free_port():
    "A free TCP port on 127.0.0.1."
    import socket
    s = socket.socket(); s.bind(('127.0.0.1', 0)); p = s.getsockname()[1]; s.close(); return p


def tiny_bundle(d, task='classify', arch='small_cnn', n_per_class=5, size=48, name='steel', **kw):
    "Train `arch` for one epoch on a few synthetic images per class in folder `d` and export it: the bundle's folder."
    from defect_nb.synth import synthesize
    from defect_nb.train import train
    from defect_nb.export import export_bundle
    synthesize(d / 'syn', n_per_class, 64, seed=0, progress=False)
    r = train(d / 'syn', task, arch, epochs=1, size=size, bs=8, out=d / 'run', num_workers=0, progress=False, **kw)
    export_bundle(r.path, d / name, report=False)
    return d / name


@pytest.fixture(scope='session')
def bundle(tmp_path_factory):
    "A tiny classifier bundle (small_cnn, 48 px, one epoch on 5 synthetic images per class), shared by the service tests."
    return tiny_bundle(tmp_path_factory.mktemp('srv'))


@pytest.fixture(scope='session')
def server_info(bundle, tmp_path_factory):
    """A real `defect-nb serve --max-mb 1` on 127.0.0.1, run in an empty folder of its own with its own TMPDIR (so the
    tests can see that a request wrote nothing): dict(url, pid, cwd, tmp, root, log), log: its stdout and stderr."""
    import httpx, time
    root = tmp_path_factory.mktemp('served')
    cwd, tmp, log = root / 'a' / 'b' / 'cwd', root / 'tmp', tmp_path_factory.mktemp('served_log') / 'server.log'
    cwd.mkdir(parents=True); tmp.mkdir()
    port = free_port()
    exe = shutil.which('defect-nb', path=str(BIN))
    with open(log, 'w') as f:                                            # a file, not a pipe nobody reads: it never fills up
        p = subprocess.Popen([exe, 'serve', '--model', str(bundle), '--port', str(port), '--max-mb', '1'], cwd=cwd,
                             env={**os.environ, 'TMPDIR': str(tmp)}, stdout=f, stderr=subprocess.STDOUT)
    url = f'http://127.0.0.1:{port}'
    for _ in range(300):
        if p.poll() is not None: pytest.fail(f"server exited with {p.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx.get(url + '/health', timeout=1).status_code == 200: break
        except httpx.HTTPError: time.sleep(0.2)
    else:
        p.kill(); pytest.fail(f"server did not start: {log.read_text()[-2000:]}")
    yield dict(url=url, pid=p.pid, cwd=cwd, tmp=tmp, root=root, port=port, log=log)
    p.terminate(); p.wait(10)


@pytest.fixture(scope='session')
def server(server_info):
    "The URL of the shared test server, e.g. http://127.0.0.1:PORT."
    return server_info['url']


# Headless Chromium for the browser tests (the Voilà dashboard, the rendered docs pages): Debian's chromium driven by
# Playwright, so no browser download. Skipped where chromium is missing, except in CI, which must install it.
CHROMIUM = shutil.which('chromium') or '/usr/bin/chromium'
CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
                 '--disable-sync', '--no-first-run']
needs_chromium = pytest.mark.skipif(not Path(CHROMIUM).exists() and os.environ.get('CI') != 'true',
                                    reason='Debian chromium is not installed (apt-get install chromium); CI installs it')


@pytest.fixture(scope='module')
def browser():
    "A headless Chromium (Playwright `Browser`), launched once per test module; open pages with `browser.new_page()`."
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope='session', autouse=True)
def feature_cache(tmp_path_factory):
    "Frozen features are cached in a temporary folder during tests, never in the user's ~/.cache."
    d = tmp_path_factory.mktemp('cache'); old = os.environ.get('DEFECT_NB_CACHE')
    os.environ['DEFECT_NB_CACHE'] = str(d)
    yield d
    if old is None: os.environ.pop('DEFECT_NB_CACHE', None)
    else: os.environ['DEFECT_NB_CACHE'] = old
