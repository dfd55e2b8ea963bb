"""Record how a module was built, so it can be rebuilt from data alone.

NVIDIA's persistence embeds each class's source text in the pickle and executes it on load. We store
only the dotted class name and the constructor kwargs (plain data) next to the state dict; rebuilding
imports *our* class by name. See `torch_utils/snapshot.py` for the file format.
"""
import copy
import functools
import inspect

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
