"""Every public name documents itself the way nbdev shows it: a docstring, and one comment per parameter
(`param:type=default, # what it is`), which `show_doc` turns into the parameter table of the API pages.

A parameter counts as documented when `fastcore.docments.docments` finds its comment. A comment after several
parameters on one line (`mean=None, std=None, # ...`) documents only the last. Constants (dicts, tuples, strings) are
not checked: Python attaches no docstring to a value; their notebooks describe them in prose.
"""
import dataclasses, importlib, inspect, warnings
import pytest
from fastcore.docments import docments

MODULES = ['core', 'synth', 'data', 'models', 'features', 'train', 'evaluate', 'explain', 'export', 'inference', 'serve', 'dashboard', 'batch', 'anomaly', 'cli']

# Names that mean the same thing everywhere in defect_nb and in torch/fastai, so a comment on each would repeat itself.
SELF_EXPLANATORY = {
    'device',    # always passed to core.get_device ('cpu', 'cuda', 'auto', a torch.device), documented there
    'progress',  # always "show a tqdm progress bar"
    'seed',      # always the random seed, passed to core.set_seed or a numpy Generator
    'bs',        # always the batch size, as in fastai
}


def own_doc(obj):
    "The docstring `obj` itself defines (not one inherited from a base class such as Exception or nn.Module)."
    d = obj.__dict__.get('__doc__') if inspect.isclass(obj) else getattr(obj, '__doc__', None)
    return (d or '').strip()


def undocumented(obj):
    "Parameters of a function, or of a class's own `__init__` (or dataclass fields), that have no docment."
    if inspect.isclass(obj):
        if '__init__' not in obj.__dict__ and not dataclasses.is_dataclass(obj): return []   # inherited: checked where defined
        sig = inspect.signature(obj.__init__)
    else: sig = inspect.signature(obj)
    docs = docments(obj)                      # for a class, docments reads __init__ (or the dataclass fields)
    skip = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    return [n for n, p in sig.parameters.items()
            if n not in ('self', 'cls') and p.kind not in skip and n not in SELF_EXPLANATORY and docs.get(n) is None]


def problems(module):
    "['module.name: what is missing', ...] for every function and class in `module.__all__`."
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        mod = importlib.import_module(f'defect_nb.{module}')
    out = []
    for name in mod.__all__:
        obj = getattr(mod, name)
        if not (inspect.isclass(obj) or inspect.isfunction(obj)): continue
        missing = ([] if own_doc(obj) else ['docstring']) + undocumented(obj)
        if missing: out.append(f"{module}.{name}: {', '.join(missing)}")
    return out


@pytest.mark.parametrize('module', MODULES)
def test_public_names_are_documented(module):
    found = problems(module)
    assert not found, f"{len(found)} public names in defect_nb.{module} lack a docstring or parameter comments:\n" + '\n'.join(found)


def test_checker_sees_what_nbdev_sees():
    "The check itself: a same-line comment documents a parameter, a shared comment only the last, inherited docs do not count."
    def f(a:int, # the a
          b=1, c=2, # only c
          *args, device='cpu', **kwargs):
        "Doc."
    assert undocumented(f) == ['b']
    class E(ValueError): pass
    assert own_doc(E) == '' and own_doc(f) == 'Doc.'
    @dataclasses.dataclass
    class D:
        "A record."
        x: int # the x
        y: int = 0
    assert undocumented(D) == ['y']
