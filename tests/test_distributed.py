"Distributed training: `accelerate launch` with two CPU processes (gloo) on the tiny synthetic set, as a user would run it on GPUs."
import json, os, subprocess, sys
from pathlib import Path
import pandas as pd, pytest, torch
from defect_nb.train import train, load_model, RunError

accelerate = pytest.importorskip('accelerate')
BIN = Path(sys.executable).parent

def test_two_processes_one_run_folder(synth_small, tmp_path):
    tmp = tmp_path/'tmp'; tmp.mkdir()
    out = tmp_path/'runs'/'dist'
    # on GPUs: accelerate launch --multi_gpu --num_processes N ...; here the same launcher (torchrun) starts two CPU processes
    cmd = [str(BIN/'accelerate'), 'launch', '--multi_gpu', '--num_processes', '2', '--num_machines', '1', '--mixed_precision', 'no',
           '--dynamo_backend', 'no', '-m', 'defect_nb.cli', 'train', '--data', str(synth_small), '--arch', 'small_cnn', '--method', 'fastai',
           '--epochs', '2', '--size', '64', '--bs', '8', '--out', str(out), '--workers', '0', '--distributed']
    env = {**os.environ, 'ACCELERATE_USE_CPU': 'true', 'TMPDIR': str(tmp), 'OMP_NUM_THREADS': '1', 'PYTHONWARNINGS': 'ignore'}
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    cfg = json.loads((out/'config.json').read_text())
    assert cfg['world_size'] == 2 and cfg['epochs_done'] == 2      # two processes really joined one process group
    hist = pd.read_csv(out/'history.csv')
    assert hist.epoch.tolist() == [1, 2]                            # one row per epoch, not one per process
    assert sorted(p.name for p in out.glob('epoch_*.pth')) == ['epoch_01.pth', 'epoch_02.pth']
    assert not list(tmp.glob('defect_nb-rank*'))                    # rank 1 wrote only to a temporary folder, now removed
    m = load_model(out)
    with torch.no_grad(): y = m(torch.zeros(1, 3, 64, 64))
    assert y.shape == (1, len(cfg['classes']))

def test_distributed_needs_method_fastai(synth_small, tmp_path):
    with pytest.raises(RunError, match="method 'fastai'"):
        train(synth_small, distributed=True, out=tmp_path/'r', progress=False)
