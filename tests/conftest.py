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
