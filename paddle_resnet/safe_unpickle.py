"""Which pickled globals a checkpoint or a CIFAR batch may name. `paddle.save` writes a
pickle, the CIFAR python archives are pickles, and unpickling calls whatever callable the
file names (`os.system` included). So a file someone hands over is first read by an
unpickler that resolves only the classes such files are made of; anything else stops the
read before it is called. The same reason made `torch.load(weights_only=True)` PyTorch's
default."""
import io
import pickle

# What `paddle.save` of the package's states pickles: containers, numpy arrays (tensors
# are saved as (name, ndarray) tuples) and the RNG's GeneratorState, which is plain data.
ALLOWED_GLOBALS = frozenset({
    ("builtins", "tuple"), ("builtins", "list"), ("builtins", "dict"),
    ("builtins", "set"), ("builtins", "frozenset"), ("builtins", "bytearray"),
    ("collections", "OrderedDict"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"), ("numpy.core.multiarray", "scalar"),
    ("paddle.base.libpaddle", "GeneratorState"),
})

# What a batch of the CIFAR python archives pickles: a dict of lists, strings and one
# uint8 ndarray. Python 3 writers at protocol 2 store bytes through `_codecs.encode`
# (latin-1 text back to bytes, nothing else); Python 2's cPickle, the official files'
# writer, names numpy.core.
CIFAR_BATCH_GLOBALS = frozenset({
    ("builtins", "tuple"), ("builtins", "list"), ("builtins", "dict"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "_reconstruct"),
    ("_codecs", "encode"),
})


class ForbiddenGlobal(pickle.UnpicklingError):
    """The pickle names a global outside its allowlist."""

    def __init__(self, module: str, name: str):
        super().__init__(f"{module}.{name}")
        self.qualified_name = f"{module}.{name}"


class _AllowlistUnpickler(pickle.Unpickler):
    def __init__(self, file, allowed, **kwargs):
        super().__init__(file, **kwargs)
        self.allowed = allowed

    def find_class(self, module, name):
        if (module, name) not in self.allowed:
            raise ForbiddenGlobal(module, name)
        return super().find_class(module, name)

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("persistent ids are not part of a checkpoint or a batch")


def check_data_only(data: bytes, allowed=ALLOWED_GLOBALS) -> None:
    """Reads the pickle in `data` resolving only the `allowed` globals; raises
    ForbiddenGlobal for any other (before it could be called) and pickle's own errors for
    a damaged file. A pickle reads the same way twice, so what passes here is safe to hand
    to paddle.load or paddle.vision.datasets."""
    _AllowlistUnpickler(io.BytesIO(data), allowed, encoding="latin1").load()
