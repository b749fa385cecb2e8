"""Which pickled globals a checkpoint may name. `paddle.save` writes a pickle, and
unpickling calls whatever callable the file names (`os.system` included), so a checkpoint
someone hands over is first read by an unpickler that resolves only the classes Paddle's
own state dicts are made of; anything else stops the read before it is called. The same
reason made `torch.load(weights_only=True)` PyTorch's default."""
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


class ForbiddenGlobal(pickle.UnpicklingError):
    """The pickle names a global outside ALLOWED_GLOBALS."""

    def __init__(self, module: str, name: str):
        super().__init__(f"{module}.{name}")
        self.qualified_name = f"{module}.{name}"


class _AllowlistUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) not in ALLOWED_GLOBALS:
            raise ForbiddenGlobal(module, name)
        return super().find_class(module, name)

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("persistent ids are not part of a checkpoint")


def check_data_only(data: bytes) -> None:
    """Reads the pickle in `data` resolving only ALLOWED_GLOBALS; raises ForbiddenGlobal
    for any other (before it could be called) and pickle's own errors for a damaged file.
    A pickle reads the same way twice, so what passes here is safe to hand to paddle.load."""
    _AllowlistUnpickler(io.BytesIO(data), encoding="latin1").load()
