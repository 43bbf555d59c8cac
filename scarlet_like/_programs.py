"""Compiled programs (the fit's, the sampler's) kept on disk: a fresh process neither traces nor lowers them.

JAX's persistent compilation cache (`_cache.py`) saves XLA's compile, but a fresh process must still
trace the program (run the model's Python under JAX) and lower it to StableHLO before the cache can
even be asked: for the fit loop of the HSC demo blend, about 2.3 s of CPU per process (of 12 s from
scene to fitted model), every time. Here a program is exported (`jax.export`) the first time its
structure is seen and written next to the compilation cache; later processes read it back and call
it, after looking it up by a key computed from the call's structure alone, without tracing.

The key must change whenever the program would: it is a hash of

- the versions of Python, JAX, jaxlib and the libraries the fit traces, the source files of
  scarlet_like itself, the platform and devices, and JAX's configuration;
- the shapes and dtypes of the call's arrays, and the layout of the pytree holding them;
- every static part of the call, by value: numbers, strings, constraints and priors, and every
  function and class in it by its code (`co_code`, constants, defaults, closure and the globals it
  reads) and, for the user's own code (not an installed package, or one installed in editable mode),
  by the source files of its module and of the user's modules that one imports.

An object may say what it means with a `__fingerprint__()` method, returning the plain value to hash
in its place (the structure of a numpyro prior, whose fields come in a `set`'s order, does). A call
whose static part holds something this cannot fingerprint (an object of an unknown kind), a
traced call, a call with arrays on several devices, or a program that cannot be exported (one with
host callbacks) is compiled by `eqx.filter_jit` as before. `SCARLET_LIKE_CACHE=0` turns this off with
the compilation cache.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import hashlib
import importlib.metadata
import inspect
import json
import operator
import os
import pathlib
import pickle
import sys
import types
import weakref
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import numpy as np

from ._cache import compilation_cache_folder

__all__ = ["stored_eval_shape", "stored_jit"]

# Packages whose code is identified by their installed version rather than read: the ones a fit's
# program is traced through. Other installed packages go by their version too, the user's code by its files.
_VERSIONED = (
    "jax",
    "jaxlib",
    "equinox",
    "optax",
    "blackjax",
    "numpyro",
    "numpy",
    "jaxtyping",
    "ml_dtypes",
    "flowjax",
    "distrax",
    "scipy",
    "opt_einsum",
)
_STDLIB = frozenset(sys.stdlib_module_names) | {"builtins"}
_PLAIN = (type(None), bool, int, float, complex, str, bytes, type(Ellipsis))
# JAX options that change how programs are logged, cached or checked, never what they compute: left
# out of the key so that turning on `jax.log_compiles` does not miss every stored program
_CONFIG_IGNORED = ("log_compiles", "compilation_cache", "persistent_cache", "explain_cache_misses", "logging")


class _Unknown(Exception):
    """An object whose value cannot be fingerprinted: the call is compiled as usual."""


def stored_jit(fn: Callable[..., Any], *, inline: bool = False) -> Callable[..., Any]:
    """`eqx.filter_jit(fn)`, with the exported program kept on disk between processes.

    **Arguments:**

    - `fn`: a function of pytrees, as for `eqx.filter_jit`; its array leaves are traced, every other
      leaf is static.
    - `inline`: inside a transformation, call `fn` itself rather than a compiled `fn` (for helpers of
      the model's own code, which run eagerly only while a model is built).

    **Returns:**

    A function with the same signature and results as `eqx.filter_jit(fn)`.
    """
    jitted = fn if inline else eqx.filter_jit(fn)
    # compiled programs of this process by key; `None` marks a structure that is compiled as usual
    programs: dict[str, Any] = {}
    # keys of this process by the call's structure, compared as `jit` compares it (static values by
    # `==`, functions by identity): a fit calls its segment once per stretch, and a key takes about
    # 20 ms to compute for the demo's scene
    keys: dict[Any, str | None] = {}

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        folder = compilation_cache_folder()
        if folder is None or _traced_or_spread((args, kwargs)):
            return jitted(*args, **kwargs)  # (with `inline`, outside a trace too: op by op as before)
        from .core.tree import canonical_tokens

        # Parameters' identities are random per process: the key is of the numbered ones
        arguments, restore = canonical_tokens((args, kwargs))
        dynamic, static = eqx.partition(arguments, eqx.is_array)
        leaves, layout = jax.tree_util.tree_flatten(dynamic)
        static_leaves, static_layout = jax.tree_util.tree_flatten(static)
        structure = (layout, static_layout, tuple(static_leaves), tuple(_abstract(leaf) for leaf in leaves))
        try:
            key = (
                keys[structure]
                if structure in keys
                else keys.setdefault(structure, _key_or_none(fn, static, layout, leaves))
            )
        except TypeError:  # an unhashable static value: fingerprinted at every call
            key = _key_or_none(fn, static, layout, leaves)
        if key is None:
            return jitted(*args, **kwargs)
        if key not in programs:
            programs[key] = _read(folder, key, fn.__name__) or _export(
                folder, key, fn, static, layout, leaves
            )
        program = programs[key]
        if program is None:
            return jitted(*args, **kwargs)
        run, out_layout, out_static = program
        return restore(eqx.combine(jax.tree_util.tree_unflatten(out_layout, run(*leaves)), out_static))

    return call


def stored_eval_shape(fn: Callable[..., Any], *args: Any) -> Any:
    """`eqx.filter_eval_shape(fn, *args)`, kept on disk under the same key as a program would be.

    The shapes a function returns depend on its call's structure alone, which the key describes: a
    fresh process reads them back instead of tracing `fn` (a model's likelihood, checked to be a
    scalar when a `LogDensity` is made: about 0.25 s of CPU for the demo's blend). Any error the trace
    would raise was raised by the process that stored the shapes.
    """
    folder = compilation_cache_folder()
    if folder is None or _traced_or_spread(args):
        return eqx.filter_eval_shape(fn, *args)
    dynamic, static = eqx.partition((args, {}), eqx.is_array)
    leaves, layout = jax.tree_util.tree_flatten(dynamic)
    key = _key_or_none(fn, static, layout, leaves)
    if key is None:
        return eqx.filter_eval_shape(fn, *args)
    path = folder / "programs" / f"{key}.shapes"
    try:
        return pickle.loads(path.read_bytes())
    except Exception:  # noqa: BLE001 - missing or unreadable: traced, and written for the next process
        pass
    shapes = eqx.filter_eval_shape(fn, *args)
    try:
        payload = pickle.dumps(shapes)
        if eqx.tree_equal(pickle.loads(payload), shapes) is True:
            _write(path, payload)
    except Exception:  # noqa: BLE001 - shapes that cannot be pickled are not kept
        pass
    return shapes


def _write(path: pathlib.Path, payload: bytes) -> None:
    """Write `path` whole or not at all (a reader never sees part of it); a read-only folder is left."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.name}.{os.getpid()}.part")
        partial.write_bytes(payload)
        os.replace(partial, path)
    except OSError:
        pass


def _key_or_none(fn: Callable[..., Any], static: Any, layout: Any, leaves: list[Any]) -> str | None:
    try:
        return _key(fn, static, layout, leaves)
    except _Unknown:
        return None


def _traced_or_spread(args: Any) -> bool:
    for leaf in jax.tree_util.tree_leaves(args):
        if isinstance(leaf, jax.core.Tracer):
            return True
        if isinstance(leaf, jax.Array) and len(leaf.sharding.device_set) != 1:
            return True
    return False


def _runner(exported: Any, name: str, weak: tuple[bool, ...]) -> Callable[..., Any]:
    from jax.extend.core.primitives import convert_element_type_p

    def run(*leaves: Any) -> Any:
        # A serialized program forgets which results were weakly typed (a Python number's type, which
        # gives way to the other operand's in arithmetic): read back, `jnp.stack` of two Python floats
        # came back a strong float32. Marked again here, inside the program, at no cost.
        return [
            convert_element_type_p.bind(output, new_dtype=output.dtype, weak_type=True, sharding=None)
            if weakly
            else output
            for output, weakly in zip(exported.call(*leaves), weak, strict=True)
        ]

    # the name JAX logs and the compilation cache files it under: the function's own
    run.__name__ = run.__qualname__ = name
    jitted = jax.jit(run)

    def run_as_jit(*leaves: Any) -> Any:
        outputs = jitted(*leaves)
        if any(getattr(leaf, "committed", False) for leaf in leaves):
            return outputs
        return [_uncommitted(output) for output in outputs]

    return run_as_jit


def _uncommitted(output: Any) -> Any:
    """`output` as `jit` would have returned it from uncommitted arguments: not committed to its device.

    JAX commits every result of a program that calls an exported one (it counts the exported results'
    memory space as a transfer). A committed array and an uncommitted one are different arguments to
    `jit`, so a program called first with a stored program's result and then with its own (a sampler's
    chains, chunk after chunk) was compiled twice: 24 s more for the quickstart's `sl.sample` with an
    empty cache. Same buffer, no copy.
    """
    from jax._src.array import ArrayImpl  # the one constructor that takes `committed`

    if isinstance(output, jax.core.Tracer):  # called while another program is traced: part of that one
        return output
    if not isinstance(output, jax.Array) or not output.committed or len(output.sharding.device_set) != 1:
        return output
    if jax.dtypes.issubdtype(output.dtype, jax.dtypes.prng_key):  # a typed key: its array of key data
        return type(output)(output._impl, _uncommitted(output._base_array))  # type: ignore[attr-defined]
    return ArrayImpl(output.aval, output.sharding, output._arrays, committed=False)  # type: ignore[attr-defined]


def _export(
    folder: pathlib.Path, key: str, fn: Callable[..., Any], static: Any, layout: Any, leaves: list[Any]
) -> tuple[Any, Any, Any] | None:
    """Export the program, write it under `key` and return it; `None` if it cannot be stored."""
    from jax import export

    out_parts: list[Any] = []

    def flat(*arrays: Any) -> list[Any]:
        args, kwargs = eqx.combine(jax.tree_util.tree_unflatten(layout, arrays), static)
        out = fn(*args, **kwargs)
        out_dynamic, out_static = eqx.partition(out, eqx.is_array)
        out_leaves, out_layout = jax.tree_util.tree_flatten(out_dynamic)
        out_parts[:] = [out_layout, out_static]
        return out_leaves

    flat.__name__ = flat.__qualname__ = fn.__name__
    try:
        # (quietly: JAX would log this lowering as a compile; the program's compile is logged when it
        # first runs, once per structure as without stored programs)
        with jax.log_compiles(False):
            exported = export.export(jax.jit(flat))(*[_abstract(leaf) for leaf in leaves])
        weak = tuple(bool(aval.weak_type) for aval in exported.out_avals)
        run = _runner(exported, fn.__name__, weak)
    except Exception:  # noqa: BLE001 - host callbacks, say: compiled as usual
        return None
    out_layout, out_static = out_parts
    try:
        payload = pickle.dumps((bytes(exported.serialize()), out_layout, out_static, weak))
        stored = _same_after_pickling(payload, out_layout, out_static)
    except Exception:  # noqa: BLE001 - an output that cannot be pickled
        stored = False
    # not stored: an output whose layout is not the same once unpickled (Equinox's sentinels in a
    # module's layout are new objects then); this process uses the program, later ones export it again
    if stored:
        _write(folder / "programs" / f"{key}.bin", payload)
    return run, out_layout, out_static


def _same_after_pickling(payload: bytes, out_layout: Any, out_static: Any) -> bool:
    _, layout, static, _ = pickle.loads(payload)
    leaves, structure = jax.tree_util.tree_flatten(static)
    mine, my_structure = jax.tree_util.tree_flatten(out_static)
    # (PyTreeDef compares by node types and node data; its stubs leave `==` out)
    return bool(layout == out_layout and operator.eq(structure, my_structure) and leaves == mine)


def _read(folder: pathlib.Path, key: str, name: str) -> tuple[Any, Any, Any] | None:
    from jax import export

    try:
        serialized, out_layout, out_static, weak = pickle.loads(
            (folder / "programs" / f"{key}.bin").read_bytes()
        )
        exported = export.deserialize(bytearray(serialized))
    except Exception:  # noqa: BLE001 - missing, truncated or unreadable: export it again
        return None
    return _runner(exported, name, weak), out_layout, out_static


def _abstract(leaf: Any) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct(np.shape(leaf), jax.dtypes.result_type(leaf), weak_type=_weak(leaf))


def _weak(leaf: Any) -> bool:
    return bool(getattr(leaf, "weak_type", False))


def _key(fn: Callable[..., Any], static: Any, layout: Any, leaves: list[Any]) -> str:
    digest = hashlib.sha256()
    digest.update(_environment().encode())
    digest.update(repr(sorted(_config().items())).encode())
    digest.update(
        repr([(np.shape(leaf), str(jax.dtypes.result_type(leaf)), _weak(leaf)) for leaf in leaves]).encode()
    )
    _Fingerprint(digest).add((fn, static, layout))
    return digest.hexdigest()[:40]


@functools.cache
def _environment() -> str:
    devices = jax.devices()
    parts = [sys.version, *(f"{name}={_version(name)}" for name in _VERSIONED)]
    parts += [devices[0].platform, str(len(devices)), *sorted({device.device_kind for device in devices})]
    parts.append(_package_digest(pathlib.Path(__file__).resolve().parent))
    return "\n".join(parts)


def _config() -> dict[str, Any]:
    return {
        name: value
        for name, value in jax.config.values.items()
        if isinstance(value, _PLAIN) and not any(word in name for word in _CONFIG_IGNORED)
    }


@functools.cache
def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "-"


@functools.cache
def _package_digest(root: pathlib.Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


@functools.cache
def _file_digest(path: str) -> str:
    try:
        return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()
    except OSError as error:
        raise _Unknown(path) from error


def _library(module_name: str | None) -> str | None:
    """How code from `module_name` is identified when it is a library's: by name and version."""
    top = (module_name or "").partition(".")[0]
    if top in _STDLIB:
        return f"python:{module_name}"
    if top == "scarlet_like":
        return f"scarlet_like:{module_name}"  # its sources are in the environment's part of the key
    if top in _VERSIONED:
        return f"{top}={_version(top)}:{module_name}"
    installed = _installed(top)
    return None if installed is None else f"{installed}:{module_name}"


@functools.cache
def _installed(top: str) -> str | None:
    """`name=version` of an installed package imported as `top`; `None` for the user's own code, and
    for a package installed in editable mode, whose code can change under one version."""
    try:
        distribution = importlib.metadata.distribution(top)
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return None
    origin = json.loads(distribution.read_text("direct_url.json") or "{}")
    if origin.get("dir_info", {}).get("editable", False):
        return None
    return f"{top}={distribution.version}"


class _Fingerprint:
    """Feeds a canonical description of a value into a hash; raises `_Unknown` where it has none."""

    def __init__(self, digest: Any) -> None:
        self.digest = digest
        self.active: set[int] = set()
        self.modules: set[str] = set()

    def put(self, *words: object) -> None:
        for word in words:
            self.digest.update(f"{word}\x1f".encode())

    def add(self, value: Any) -> None:
        if isinstance(value, _PLAIN):
            self.put(type(value).__name__, repr(value))
            return
        if id(value) in self.active:
            self.put("cycle")
            return
        self.active.add(id(value))
        try:
            self._add(value)
        finally:
            self.active.discard(id(value))

    def _add(self, value: Any) -> None:  # noqa: C901 - one case per kind of value
        canonical = getattr(type(value), "__fingerprint__", None)
        if canonical is not None:
            # an object whose fields depend on the process (an order of a `set`) says what it means
            self.add(type(value))
            self.add(canonical(value))
        elif isinstance(value, jax.tree_util.PyTreeDef):
            node_type, node_data = value.node_data() or (None, None)
            self.put("treedef", value.num_leaves, value.num_nodes)
            self.add(node_type)
            self.add(node_data)
            self.add(tuple(value.children()))
        elif isinstance(value, tuple | list):
            self.put(type(value).__name__, len(value))
            if type(value) not in (tuple, list):
                self.add(type(value))  # a NamedTuple's class
            for item in value:
                self.add(item)
        elif isinstance(value, dict):
            self.put(type(value).__name__, len(value))
            for item in value.items():
                self.add(item)
        elif isinstance(value, set | frozenset):
            self.put(type(value).__name__, *sorted(self._apart(item) for item in value))
        elif isinstance(value, np.ndarray | np.generic | jax.Array):
            array = np.asarray(value)
            self.put("array", array.dtype, array.shape, hashlib.sha256(array.tobytes()).hexdigest())
        elif isinstance(value, np.dtype):
            self.put("dtype", value)
        elif isinstance(value, enum.Enum):
            self.add(type(value))
            self.put(value.name)
        elif isinstance(value, types.ModuleType):
            self._module(value)
        elif isinstance(value, type):
            self._class(value)
        elif isinstance(value, types.FunctionType):
            self._function(value)
        elif isinstance(value, types.MethodType):
            self.put("method")
            self.add(value.__func__)
            self.add(value.__self__)
        elif isinstance(value, functools.partial):
            self.put("partial")
            self.add((value.func, value.args, value.keywords))
        elif callable(value) and isinstance(getattr(value, "__wrapped__", None), types.FunctionType):
            self.put("wrapped", type(value).__qualname__)  # e.g. a function under `jax.jit`: its code
            self.add(value.__wrapped__)
        elif (
            isinstance(value, types.BuiltinFunctionType | np.ufunc) or type(value).__name__ in _CALLABLE_KINDS
        ):
            owner = getattr(value, "__self__", None)  # `tuple.__new__` has no module, its class has
            known = _library(getattr(value, "__module__", None) or getattr(owner, "__module__", None))
            if known is None:
                raise _Unknown(_name(value))
            self.put("builtin", known, _name(value))
        elif isinstance(value, types.CodeType):
            self._code(value)
        elif isinstance(value, weakref.ref):
            self.put("weakref")  # a cache's entry (typecheckers' wrappers keep some), not a value used
        elif isinstance(value, inspect.Signature):
            # (set by typecheckers' wrappers, e.g. jaxtyping's); the defaults are the function's own
            self.put("signature", *(f"{p.name}:{p.kind.name}" for p in value.parameters.values()))
        elif type(value).__name__ in _ACCESSORS:
            # a NamedTuple's or a slot's field accessor: what it reads is in the class's field names
            self.put(type(value).__name__, getattr(value, "__name__", ""), getattr(value, "__doc__", ""))
        elif dataclasses.is_dataclass(value) or hasattr(value, "__dict__"):
            self.put("object")
            self.add(type(value))
            fields = (
                {field.name: getattr(value, field.name, None) for field in dataclasses.fields(value)}
                if dataclasses.is_dataclass(value)
                else vars(value)
            )
            self.add(fields)
        else:
            raise _Unknown(type(value).__qualname__)

    def _apart(self, value: Any) -> str:
        digest = hashlib.sha256()
        _Fingerprint(digest).add(value)
        return digest.hexdigest()

    def _module(self, module: types.ModuleType) -> None:
        known = _library(module.__name__)
        if known is not None:
            self.put("module", known)
            return
        self.put("module", module.__name__)
        if module.__name__ in self.modules:
            return
        self.modules.add(module.__name__)
        path = getattr(module, "__file__", None)
        if path is None:
            raise _Unknown(module.__name__)
        self.put(_file_digest(path))
        # the user's modules it imports, so that a change two files away is seen too
        for value in list(vars(module).values()):
            other = (
                value
                if isinstance(value, types.ModuleType)
                else sys.modules.get(getattr(value, "__module__", ""))
            )
            if (
                isinstance(other, types.ModuleType)
                and _library(other.__name__) is None
                and other is not module
            ):
                self._module(other)

    def _home(self, module_name: str | None) -> None:
        """The source files of the user's module that defines a class or function, if it has any."""
        module = sys.modules.get(module_name or "")
        if module is not None and getattr(module, "__file__", None):
            self._module(module)

    def _class(self, cls: type) -> None:
        known = _library(cls.__module__)
        self.put("class", cls.__module__, cls.__qualname__)
        if known is not None:
            self.put(known)
            return
        self._home(cls.__module__)
        for base in cls.__bases__:
            self.add(base)
        for name, attribute in vars(cls).items():
            if name not in _CLASS_MACHINERY and not name.startswith("_abc"):
                self.put(name)
                self.add(_plain_attribute(attribute))

    def _function(self, function: types.FunctionType) -> None:
        known = _library(function.__module__)
        self.put("function", function.__module__, function.__qualname__)
        if known is not None and function.__closure__ is None:
            self.put(known)
            return
        self._code(function.__code__)
        self.add((function.__defaults__, function.__kwdefaults__))
        self.add(tuple(cell.cell_contents for cell in function.__closure__ or ()))
        if known is not None:
            self.put(known)
            return
        self._home(function.__module__)
        # the globals it reads, by value: a constant changed in a notebook changes the program
        names = sorted(_global_names(function.__code__))
        for name in names:
            if name in function.__globals__:
                self.put(name)
                self.add(function.__globals__[name])

    def _code(self, code: types.CodeType) -> None:
        self.put(
            "code", code.co_argcount, code.co_kwonlyargcount, code.co_flags, code.co_names, code.co_varnames
        )
        self.digest.update(code.co_code)
        for constant in code.co_consts:
            self.add(constant)


# What Python, `dataclasses` and `equinox` put in a class of their own accord, from its fields and bases
# (fingerprinted anyway): skipped, as are `abc`'s registries. Every other attribute of a user's class,
# special methods (`__call__`, operators) included, is read; one that cannot be makes the call compile
# as usual.
_CLASS_MACHINERY = frozenset(
    {
        *("__dict__", "__weakref__", "__doc__", "__module__", "__qualname__", "__annotations__", "__slots__"),
        *("__init__", "__repr__", "__eq__", "__hash__", "__setattr__", "__delattr__", "__getattribute__"),
        *("__dataclass_fields__", "__dataclass_params__", "__match_args__", "__abstractmethods__"),
        *("__orig_bases__", "__parameters__", "__firstlineno__", "__static_attributes__", "__signature__"),
        *("__post_init__", "__check_init__", "__slotnames__"),  # (the last: copyreg's cache, set by pickling)
    }
)
_ACCESSORS = ("_tuplegetter", "member_descriptor", "getset_descriptor")
_CALLABLE_KINDS = (
    "builtin_function_or_method",
    "method_descriptor",
    "wrapper_descriptor",
    "PjitFunction",
    "cython_function_or_method",
)


def _name(value: Any) -> str:
    return str(
        getattr(value, "__qualname__", None) or getattr(value, "__name__", None) or type(value).__qualname__
    )


def _plain_attribute(attribute: Any) -> Any:
    if isinstance(attribute, staticmethod | classmethod):
        return attribute.__func__
    if isinstance(attribute, property):
        return (attribute.fget, attribute.fset)
    return attribute


def _global_names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            names |= _global_names(constant)
    return names
