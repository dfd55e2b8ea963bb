"""Record how a module was built, so it can be rebuilt from data alone.

NVIDIA's persistence embeds each class's source text in the pickle and executes it on load. We store
only the dotted class name and the constructor kwargs (plain data) next to the state dict; rebuilding
imports *our* class by name. See `torch_utils/snapshot.py` for the file format.

`_reconstruct_persistent_obj` is the name NVIDIA-format pickles (NVIDIA's, i-StyleGAN's for plain
StyleGAN2 networks, and ours from `legacy.py --dest=*.pkl`) call on load, so that NVIDIA's README idiom
`pickle.load(f)['G_ema']` works with this code on the path. It never executes the embedded source: a
network is rebuilt as our class, mapped from the stored class name through legacy.CLASS_MAP and built
by the allow-list (torch_utils/allowlist.py) from the stored constructor kwargs, then given the stored
tensors. Plain pickle.load still trusts the file, though: any pickle can run code while it is read,
before this function is reached. `legacy.load_network_pkl` reads the same files without trusting them.
"""
import copy
import functools
import inspect
import pickle

# NVIDIA's persistent classes (unqualified names, as their pickles store them): the networks of a snapshot are
# rebuilt as ours; their layers and blocks stay records that the network reads its tensors from.
NETWORK_CLASSES = ('Generator', 'Discriminator', 'AugmentPipe')
PART_CLASSES = ('MappingNetwork', 'SynthesisNetwork', 'FullyConnectedLayer', 'Conv2dLayer', 'SynthesisLayer', 'ToRGBLayer',
                'SynthesisBlock', 'DiscriminatorBlock', 'MinibatchStdLayer', 'DiscriminatorEpilogue')

#----------------------------------------------------------------------------

def persistent_class(cls):
    """Class decorator: instances remember `init_kwargs` (all constructor arguments, by name)."""
    init = cls.__init__
    signature = inspect.signature(init)

    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        named = {k: v for k, v in bound.arguments.items() if k != 'self'}
        for name, param in signature.parameters.items():
            if param.kind == inspect.Parameter.VAR_KEYWORD and name in named:
                named.update(named.pop(name))
        self.__dict__['init_kwargs'] = copy.deepcopy(named)  # before nn.Module.__init__ runs is fine
        init(self, *args, **kwargs)

    cls.__init__ = __init__
    cls._persistent = True
    return cls


def class_name_of(obj) -> str:
    return f'{type(obj).__module__}.{type(obj).__qualname__}'


def module_spec(module) -> dict:
    """{'class_name', 'init_kwargs'} of a @persistent_class instance."""
    if not getattr(type(module), '_persistent', False):
        raise TypeError(f'{class_name_of(module)} is not a @persistent_class and cannot be saved by spec')
    return dict(class_name=class_name_of(module), init_kwargs=copy.deepcopy(module.init_kwargs))

#----------------------------------------------------------------------------

def _reconstruct_persistent_obj(meta):
    """What an NVIDIA-format pickle calls for each persistent object when plain pickle.load reads it (see above)."""
    import legacy
    from torch_utils import pickle_policy
    record = pickle_policy.PersistentRecord(meta if isinstance(meta, dict) else {})
    name = str(record.class_name)[:60]
    way_out = 'read the file with legacy.load_network_pkl(f), which never runs code from it and says what it cannot use'
    if isinstance(meta, dict) and meta.get('type') == 'class' and name in PART_CLASSES:
        return record
    if not isinstance(meta, dict) or meta.get('type') != 'class' or name not in NETWORK_CLASSES:
        raise pickle.UnpicklingError(f'pickle.load met a persistent "{name}", which this code does not rebuild; {way_out}.')
    try:
        return legacy.module_from_persistent_record(record, f'pickle.load: {name}')
    except (legacy.LegacyError, TypeError, ValueError, AttributeError, KeyError, IndexError) as e:
        raise pickle.UnpicklingError(f'pickle.load cannot rebuild this {name} ({str(e).rstrip(".")[:200]}); {way_out}.') from None
