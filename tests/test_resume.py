"Training interrupted (Ctrl-C or kill -9) mid-epoch leaves a valid run folder, and `defect-nb train --resume` finishes it."
import os, shutil, signal, subprocess, sys, time
from pathlib import Path
import pandas as pd, pytest, torch
from defect_nb.train import finished_epochs, list_epochs, load_config, load_model

EPOCHS = 5
EXPECTED = {'config.json', 'history.csv', 'curves.png', 'best.pth', 'optimizer.pth'}


def start_training(synth_small, run, cwd):
    exe = shutil.which('defect-nb', path=str(Path(sys.executable).parent))
    return subprocess.Popen([exe, 'train', '--data', str(synth_small), '--arch', 'small_cnn', '--no-pretrained', '--epochs', str(EPOCHS),
                             '--size', '48', '--bs', '8', '--workers', '0', '--out', str(run)], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(path, proc, timeout=180):
    t = time.monotonic()
    while not path.exists():
        assert proc.poll() is None, f"training ended before {path.name}: {proc.stderr.read()[-1500:]}"
        assert time.monotonic() - t < timeout, f"no {path.name} after {timeout} s"
        time.sleep(0.02)


def check_valid(run):
    "Every finished epoch has its checkpoint and history row, every checkpoint loads, nothing half-written is visible."
    n = finished_epochs(run)
    hist = pd.read_csv(run / 'history.csv')
    assert 1 <= n < EPOCHS and list(hist.epoch) == list(range(1, len(hist) + 1))
    assert list_epochs(run)[:n] == list(range(1, n + 1))
    for e in range(1, n + 1):
        sd = torch.load(run / f'epoch_{e:02d}.pth', weights_only=True); assert all(torch.is_tensor(v) for v in sd.values())
    load_model(run, n)
    names = {p.name for p in run.iterdir() if not p.name.startswith('.')}
    assert names - {f'epoch_{e:02d}.pth' for e in list_epochs(run)} <= EXPECTED | {'split.csv'}
    return n


@pytest.mark.parametrize('how', ['sigint', 'sigkill'])
def test_interrupted_training_resumes(cli, synth_small, tmp_path, how):
    data = tmp_path / 'data'; shutil.copytree(synth_small, data)          # the split file is written beside the data
    run = tmp_path / 'run'
    p = start_training(data, run, tmp_path)
    wait_for(run / 'epoch_02.pth', p)
    p.send_signal(signal.SIGINT if how == 'sigint' else signal.SIGKILL)
    out, err = p.communicate(timeout=120)
    if how == 'sigint':
        assert p.returncode == 130, err
        lines = [l for l in err.strip().splitlines() if l.startswith('defect-nb train:')]
        assert lines and f'defect-nb train --resume {run}' in lines[-1] and 'Traceback' not in err, err
        assert load_config(run)['epochs_done'] == finished_epochs(run)
    else:
        assert p.returncode == -signal.SIGKILL
    done = check_valid(run)
    r = cli('train', '--resume', run, '--workers', '0', '--json', timeout=300)
    assert r.returncode == 0, r.stderr
    hist = pd.read_csv(run / 'history.csv')
    assert list(hist.epoch) == list(range(1, EPOCHS + 1)) and list_epochs(run) == list(range(1, EPOCHS + 1))
    cfg = load_config(run)
    assert cfg['epochs_done'] == EPOCHS and cfg['resumed'][0]['at_epoch'] == done
    assert not list(run.glob('.*.tmp'))
    again = cli('train', '--resume', run)
    assert again.returncode == 2 and 'nothing to resume' in again.stderr


def test_resume_refuses_what_it_cannot_continue(cli, tmp_path):
    r = cli('train', '--resume', tmp_path)
    assert r.returncode == 2 and 'not a run folder' in r.stderr
    r = cli('train', '--resume', tmp_path, '--data', 'x')
    assert r.returncode == 2 and 'drop --data' in r.stderr
