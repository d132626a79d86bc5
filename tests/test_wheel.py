"`pip install defect_nb` from a built wheel, in a fresh venv: import it and run `defect-nb --help`."
import os, subprocess, sys, sysconfig, zipfile
from pathlib import Path
from conftest import ROOT


def run(*cmd, **kw):
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=600, **kw)
    assert r.returncode == 0, f"{cmd}\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
    return r


CHECK_REQS = """
from importlib.metadata import requires, version
from packaging.requirements import Requirement
for r in map(Requirement, requires('defect_nb')):
    if r.marker and not r.marker.evaluate({'extra': ''}): continue
    v = version(r.name)
    assert r.specifier.contains(v, prereleases=True), f'{r} not satisfied by {v}'
    print(r.name, v)
"""


def test_wheel_installs_in_fresh_venv(tmp_path):
    dist = tmp_path / 'dist'
    run(sys.executable, '-m', 'build', '--wheel', '--no-isolation', '--outdir', dist, ROOT)
    whl, = dist.glob('defect_nb-*.whl')
    names = zipfile.ZipFile(whl).namelist()
    assert 'defect_nb/core.py' in names and not any(n.startswith(('nbs/', 'tests/')) for n in names)
    venv = tmp_path / 'venv'
    run(sys.executable, '-m', 'venv', venv)
    py = venv / 'bin' / 'python'
    # The dependencies (torch is several GB) come from this environment through a .pth file, so nothing is
    # downloaded; the package itself comes only from the wheel, and each requirement it declares is checked.
    site = Path(run(py, '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])').stdout.strip())
    (site / '_deps.pth').write_text(sysconfig.get_paths()['purelib'] + '\n')
    run(py, '-m', 'pip', 'install', '--no-index', '--no-deps', whl)
    r = run(py, '-c', CHECK_REQS)
    assert 'torch' in r.stdout and 'fastai' in r.stdout
    r = run(py, '-c', 'import defect_nb, defect_nb.data, defect_nb.synth; print(defect_nb.__file__, defect_nb.__version__)', cwd=tmp_path)
    assert str(venv) in r.stdout
    r = run(venv / 'bin' / 'defect-nb', '--help', cwd=tmp_path)
    assert 'synth' in r.stdout and 'data' in r.stdout
