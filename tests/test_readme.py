"The README as a new user reads it: its Python example runs, its make targets exist in a fresh clone, its CLI verbs answer --help."
import os, re, shutil, subprocess, sys
from pathlib import Path
import pytest
from conftest import ROOT, BIN

README = (ROOT / 'README.md').read_text()


def blocks(lang):
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def test_readme_opens_with_the_two_commands_and_a_picture():
    head = README[:README.index('## Install')]
    assert re.search(r'!\[[^\]]+\]\((nbs/images/[\w.]+\.png)\)', head) and (ROOT / re.search(r'\((nbs/images/[\w.]+\.png)\)', head).group(1)).exists()
    first = blocks('sh')[0].splitlines()
    assert [l.split('#')[0].strip() for l in first] == ['make demo', 'make test']
    assert 'pyproject.toml' in head and 'settings.ini' in head


def test_python_example_runs(tmp_path):
    code = blocks('python')[0]
    r = subprocess.run([sys.executable, '-c', code], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                       env={**os.environ, 'PYTHONWARNINGS': 'ignore'})
    assert r.returncode == 0, r.stderr[-2000:]
    assert "'prediction'" in r.stdout and (tmp_path / 'bundles' / 'steel' / 'model.int8.onnx').exists()


def test_make_targets_in_a_fresh_clone(tmp_path):
    if not (ROOT / '.git').exists(): pytest.skip('not a git checkout')
    clone = tmp_path / 'clone'
    subprocess.run(['git', 'clone', '-q', str(ROOT), str(clone)], check=True)
    for target in ('demo', 'test'):
        r = subprocess.run(['make', '-n', target], cwd=clone, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert 'pip install' in r.stdout                                      # set-up is part of both
    assert 'defect-nb demo' in subprocess.run(['make', '-n', 'demo'], cwd=clone, capture_output=True, text=True).stdout


def test_every_cli_verb_in_the_readme_has_help():
    verbs = sorted(set(re.findall(r'`defect-nb ([\w-]+)', README)))   # verbs may have a hyphen (paste-anomalies)
    assert len(verbs) >= 10
    exe = shutil.which('defect-nb', path=str(BIN))
    for v in verbs:
        r = subprocess.run([exe, v, '--help'], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0 and 'usage: defect-nb ' + v in r.stdout, (v, r.stderr[-500:])
