"""RPF101-RPF105: random numbers drawn without a fixed seed.

A seed set anywhere in the module (``random.seed(0)``, ``np.random.seed(0)``,
``torch.manual_seed(0)``, ``tf.random.set_seed(0)``, ``@repro_task(seed=0)``, a
``seed_everything(0)``-style helper) satisfies the matching rule for every draw from that
library's *global* generator in the module. Generators created without a seed
(``random.Random()``, ``np.random.default_rng()``, ``jax.random.PRNGKey(time.time())``) are
reported whatever the module seeds, because a global seed does not reach them.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

from ._context import ModuleContext, is_none, keyword
from ._flow import Taint
from ._registry import Hit, rule

PY_DRAWS = frozenset(
    {
        "random", "uniform", "randint", "randrange", "choice", "choices", "shuffle", "sample",
        "gauss", "normalvariate", "lognormvariate", "expovariate", "vonmisesvariate",
        "gammavariate", "betavariate", "paretovariate", "weibullvariate", "triangular",
        "getrandbits", "randbytes", "binomialvariate",
    }
)  # fmt: skip
NP_DRAWS = frozenset(
    {
        "rand", "randn", "randint", "random_integers", "random_sample", "random", "ranf",
        "sample", "choice", "bytes", "shuffle", "permutation", "beta", "binomial", "chisquare",
        "dirichlet", "exponential", "f", "gamma", "geometric", "gumbel", "hypergeometric",
        "laplace", "logistic", "lognormal", "logseries", "multinomial", "multivariate_normal",
        "negative_binomial", "noncentral_chisquare", "noncentral_f", "normal", "pareto",
        "poisson", "power", "rayleigh", "standard_cauchy", "standard_exponential",
        "standard_gamma", "standard_normal", "standard_t", "triangular", "uniform", "vonmises",
        "wald", "weibull", "zipf",
    }
)  # fmt: skip
#: numpy constructors that take a seed as first argument (``None`` means OS entropy).
NP_SEEDABLE = frozenset(
    {"default_rng", "RandomState", "SeedSequence", "PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64"}
)
TORCH_DRAWS = frozenset(
    {
        "rand", "randn", "randint", "randperm", "rand_like", "randn_like", "randint_like",
        "normal", "bernoulli", "multinomial", "poisson",
    }
)  # fmt: skip
TORCH_LAYERS = frozenset(
    {
        "Linear", "Bilinear", "LazyLinear", "Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d",
        "ConvTranspose2d", "ConvTranspose3d", "LazyConv1d", "LazyConv2d", "LazyConv3d",
        "Embedding", "EmbeddingBag", "RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell",
        "MultiheadAttention", "Transformer", "TransformerEncoderLayer",
        "TransformerDecoderLayer", "Dropout", "Dropout1d", "Dropout2d", "Dropout3d",
        "AlphaDropout", "FeatureAlphaDropout", "RReLU",
    }
)  # fmt: skip
#: In-place tensor methods that draw from torch's global generator.
TORCH_INPLACE = frozenset(
    {"uniform_", "normal_", "random_", "bernoulli_", "exponential_", "geometric_", "cauchy_", "log_normal_"}
)
TF_DRAWS = frozenset(
    {"normal", "uniform", "truncated_normal", "shuffle", "categorical", "gamma", "poisson"}
)
KERAS_LAYERS = frozenset(
    {
        "Dense", "Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose",
        "Conv3DTranspose", "SeparableConv1D", "SeparableConv2D", "DepthwiseConv2D", "Embedding",
        "LSTM", "GRU", "SimpleRNN", "Bidirectional", "MultiHeadAttention", "Dropout",
        "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise",
        "GaussianDropout", "AlphaDropout", "RandomFlip", "RandomRotation", "RandomZoom",
        "RandomCrop", "RandomTranslation", "RandomContrast", "RandomBrightness",
    }
)  # fmt: skip

#: Calls whose value differs on every run: never a seed.
ENTROPY_CALLS = frozenset(
    {
        "time.time", "time.time_ns", "time.perf_counter", "time.perf_counter_ns",
        "time.monotonic", "time.monotonic_ns", "time.process_time", "time.thread_time",
        "datetime.datetime.now", "datetime.datetime.utcnow", "datetime.datetime.today",
        "datetime.date.today", "os.urandom", "os.getpid", "uuid.uuid1", "uuid.uuid4",
        "random.SystemRandom", "builtins.id", "builtins.hash",
    }
)  # fmt: skip

#: Helpers that seed Python, numpy and the framework at once.
_SEED_EVERYTHING_SUFFIXES = ("seed_everything", "set_random_seed", "apply_seed", "set_seed", "fix_seed", "seed_all")


def _is_entropy(ctx: ModuleContext, call: ast.Call) -> bool:
    name = ctx.call_name(call)
    if name is None:
        return False
    if name in ENTROPY_CALLS or name.startswith("secrets."):
        return True
    mod, _, fn = name.rpartition(".")
    return (mod == "random" and fn in PY_DRAWS) or (mod == "numpy.random" and fn in NP_DRAWS)


def entropy_source(ctx: ModuleContext, expr: ast.AST | None) -> ast.AST | None:
    """The call that makes ``expr`` differ between runs (a clock, OS entropy), if any."""
    if expr is None:
        return None
    scope = ctx.scope_of(expr)
    key = f"entropy:{id(scope.node)}"
    taint = ctx.memo.get(key)
    if not isinstance(taint, Taint):
        taint = ctx.memo[key] = Taint(ctx, scope, lambda c: _is_entropy(ctx, c))
    return taint.source_in(expr)


def _seed_arg(call: ast.Call, *names: str) -> ast.expr | None:
    if call.args:
        return call.args[0]
    for n in names:
        kw = keyword(call, n)
        if kw is not None:
            return kw.value
    return None


def _good_seed(ctx: ModuleContext, arg: ast.expr | None) -> bool:
    return arg is not None and not is_none(arg) and entropy_source(ctx, arg) is None


def module_seeds(ctx: ModuleContext) -> frozenset[str]:
    """Libraries whose global generator the module seeds: subset of python/numpy/torch/tf."""
    seeds = ctx.memo.get("seeds")
    if not isinstance(seeds, frozenset):
        seeds = ctx.memo["seeds"] = frozenset(_find_seeds(ctx))
    return seeds


_GLOBAL_SEEDERS = {
    "random.seed": "python",
    "numpy.random.seed": "numpy",
    "torch.manual_seed": "torch",
    "torch.random.manual_seed": "torch",
    "tensorflow.random.set_seed": "tensorflow",
    "tensorflow.set_random_seed": "tensorflow",
    "tensorflow.compat.v1.set_random_seed": "tensorflow",
    "tensorflow.compat.v1.random.set_random_seed": "tensorflow",
}
_EVERYTHING = ("python", "numpy", "torch", "tensorflow")


def _find_seeds(ctx: ModuleContext) -> Iterator[str]:
    for call in ctx.calls():
        name = ctx.call_name(call)
        target = call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", "")
        short = name.rsplit(".", 1)[-1] if name else target
        if short == "repro_task":  # @repro_task(seed=...) seeds its own task: see seeded_tasks
            continue
        if name is None:
            continue
        if name in _GLOBAL_SEEDERS:
            if _good_seed(ctx, _seed_arg(call, "seed", "a")):
                yield _GLOBAL_SEEDERS[name]
        elif short in _SEED_EVERYTHING_SUFFIXES and "." in name and not name.startswith(("random.", "numpy.")):
            if _good_seed(ctx, _seed_arg(call, "seed")):
                yield from _EVERYTHING


def _is_seeding_repro_task(ctx: ModuleContext, call: ast.Call) -> bool:
    name = ctx.call_name(call)
    target = call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", "")
    if (name.rsplit(".", 1)[-1] if name else target) != "repro_task":
        return False
    kw = keyword(call, "seed")
    return kw is not None and _good_seed(ctx, kw.value)


def seeded_tasks(ctx: ModuleContext) -> frozenset[ast.AST]:
    """The functions that ``@repro_task(seed=<int>)`` (or ``repro_task(fn, seed=<int>)``,
    ``repro_task(seed=<int>)(fn)``) seeds: each seeds every generator when *its* run starts."""
    found = ctx.memo.get("seeded_tasks")
    if isinstance(found, frozenset):
        return found
    funcs = [n for n in ctx.nodes if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    out: set[ast.AST] = set()
    wrapped: set[str] = set()
    for fn in funcs:
        if any(isinstance(d, ast.Call) and _is_seeding_repro_task(ctx, d) for d in fn.decorator_list):
            out.add(fn)
    for call in ctx.calls():
        if _is_seeding_repro_task(ctx, call) and call.args and isinstance(call.args[0], ast.Name):
            wrapped.add(call.args[0].id)  # repro_task(fn, seed=1)
        outer = ctx.parents.get(call)
        if (isinstance(outer, ast.Call) and outer.func is call and _is_seeding_repro_task(ctx, call)
                and outer.args and isinstance(outer.args[0], ast.Name)):
            wrapped.add(outer.args[0].id)  # repro_task(seed=1)(fn)
    out.update(fn for fn in funcs if fn.name in wrapped and isinstance(ctx.parents.get(fn), ast.Module))
    found = ctx.memo["seeded_tasks"] = frozenset(out)
    return found


def seeded_at(ctx: ModuleContext, node: ast.AST, library: str) -> bool:
    """Whether ``library``'s global generator is seeded where ``node`` runs: the module seeds it,
    or ``node`` is inside a seeded task, or inside a helper (not itself a task) of a module with
    a seeded task, which a seeded task may be the one to call. Code at module level runs at
    import, before any task's seed; an unseeded task is not seeded by its neighbour's seed."""
    if library in module_seeds(ctx):
        return True
    tasks = seeded_tasks(ctx)
    if not tasks:
        return False
    chain = []
    fn = ctx.enclosing_function(node)
    while fn is not None:
        chain.append(fn)
        fn = ctx.enclosing_function(fn)
    if not chain:
        return False
    if any(f in tasks for f in chain):
        return True
    return not any(ctx.is_task(f) for f in chain)


def _src(node: ast.AST) -> str:
    text = ast.unparse(node)
    return text if len(text) <= 60 else text[:57] + "..."


# -------------------------------------------------------------------------------------------
# RPF101 Python's random
# -------------------------------------------------------------------------------------------


@rule(
    "RPF101",
    "unseeded-python-random",
    severity="error",
    summary="Python's `random` module used without a fixed seed.",
    rationale="""The global generator of `random` is seeded from OS entropy at start-up, so
    every run draws different numbers; a `random.Random()` made without a seed does the same
    whatever the module seeds.""",
    fix="""Call `random.seed(<int>)` once (or use `@repro_task(seed=<int>)`), or better draw from
    a generator you own: `rng = random.Random(<int>)`.""",
)
def unseeded_python_random(ctx: ModuleContext) -> Iterator[Hit]:
    for call in ctx.calls():
        name = ctx.call_name(call)
        if name is None:
            continue
        mod, _, fn = name.rpartition(".")
        if mod != "random":
            continue
        if fn == "Random":
            arg = _seed_arg(call, "x")
            src = entropy_source(ctx, arg)
            if arg is None or is_none(arg) or src is not None:
                why = f"is seeded from `{_src(src)}`" if src is not None else "has no seed"
                yield Hit(call, f"`{_src(call)}` {why}: it draws different numbers on every run",
                          fix="pass a fixed seed: `random.Random(<int>)`")  # fmt: skip
        elif fn == "seed":
            arg = _seed_arg(call, "a")
            src = entropy_source(ctx, arg)
            if arg is None or is_none(arg) or src is not None:
                why = f"from `{_src(src)}`" if src is not None else "from OS entropy"
                yield Hit(call, f"`{_src(call)}` seeds the generator {why}, which differs on every run",
                          fix="seed with a fixed integer: `random.seed(<int>)`")  # fmt: skip
        elif fn in PY_DRAWS and not seeded_at(ctx, call, "python"):
            yield Hit(call, f"`{_src(call)}` draws from Python's global random generator, which is never seeded in this module")


# -------------------------------------------------------------------------------------------
# RPF102 numpy
# -------------------------------------------------------------------------------------------


@rule(
    "RPF102",
    "unseeded-numpy-random",
    severity="error",
    summary="numpy's global RNG used without `np.random.seed`, or a generator made without a seed.",
    rationale="""`np.random.rand()` and friends draw from a global generator seeded from OS
    entropy; `np.random.default_rng()` with no seed (or `None`) is seeded from OS entropy
    too, and `np.random.seed` does not reach it.""",
    fix="""Create one generator with a fixed seed and pass it around:
    `rng = np.random.default_rng(<int>)`, then `rng.random()`, `rng.integers(...)`. For legacy
    code, `np.random.seed(<int>)` (or `@repro_task(seed=<int>)`) seeds the global generator.""",
)
def unseeded_numpy_random(ctx: ModuleContext) -> Iterator[Hit]:
    for call in ctx.calls():
        name = ctx.call_name(call)
        if name is None or not name.startswith("numpy.random."):
            continue
        fn = name[len("numpy.random.") :]
        if fn in NP_SEEDABLE:
            arg = _seed_arg(call, "seed")
            src = entropy_source(ctx, arg)
            if arg is None or is_none(arg) or src is not None:
                why = f"is seeded from `{_src(src)}`" if src is not None else "has no seed, so numpy seeds it from OS entropy"
                yield Hit(call, f"`{_src(call)}` {why}", fix=f"pass a fixed seed: `np.random.{fn}(<int>)`")
        elif fn == "seed":
            arg = _seed_arg(call, "seed")
            src = entropy_source(ctx, arg)
            if arg is None or is_none(arg) or src is not None:
                why = f"from `{_src(src)}`" if src is not None else "from OS entropy"
                yield Hit(call, f"`{_src(call)}` seeds numpy {why}, which differs on every run",
                          fix="seed with a fixed integer: `np.random.seed(<int>)`")  # fmt: skip
        elif fn in NP_DRAWS and not seeded_at(ctx, call, "numpy"):
            yield Hit(call, f"`{_src(call)}` draws from numpy's global generator, which is never seeded in this module")


# -------------------------------------------------------------------------------------------
# RPF103 torch
# -------------------------------------------------------------------------------------------


@rule(
    "RPF103",
    "unseeded-torch",
    severity="error",
    summary="torch draws random numbers (tensors, layer weights, dropout, shuffling) without `torch.manual_seed`.",
    rationale="""torch's default generator is seeded non-deterministically at start-up: random
    tensors, the initial weights of every layer, dropout masks and `DataLoader(shuffle=True)`
    all differ between runs unless it is seeded.""",
    fix="""Call `torch.manual_seed(<int>)` (it also seeds CUDA) before building the model, or use
    `@repro_task(seed=<int>)`; give `DataLoader`/`random_split` a
    `generator=torch.Generator().manual_seed(<int>)`.""",
)
def unseeded_torch(ctx: ModuleContext) -> Iterator[Hit]:
    if not ctx.imports("torch") or "torch" in module_seeds(ctx):
        return
    for call in ctx.calls():
        if keyword(call, "generator") is not None or seeded_at(ctx, call, "torch"):
            continue
        name = ctx.call_name(call)
        if name is None:
            method = ctx.method_name(call)
            if method in TORCH_INPLACE:
                yield Hit(call, f"`{_src(call)}` fills a tensor from torch's unseeded global generator")
            continue
        parts = name.split(".")
        if parts[0] != "torch":
            continue
        fn = parts[-1]
        if len(parts) == 2 and fn in TORCH_DRAWS:
            yield Hit(call, f"`{_src(call)}` draws from torch's global generator, which is never seeded in this module")
        elif name.startswith("torch.nn.init.") and fn.endswith("_") and fn not in {"zeros_", "ones_", "constant_", "eye_", "dirac_"}:
            yield Hit(call, f"`{_src(call)}` initialises weights from torch's unseeded global generator")
        elif name.startswith("torch.nn.") and fn in TORCH_LAYERS:
            yield Hit(call, f"`{_src(call)}` initialises its weights (or masks) from torch's unseeded global generator")
        elif name.startswith("torch.nn.functional.") and "dropout" in fn:
            yield Hit(call, f"`{_src(call)}` draws dropout masks from torch's unseeded global generator")
        elif fn == "random_split":
            yield Hit(call, f"`{_src(call)}` splits at random with torch's unseeded global generator",
                      fix="pass `generator=torch.Generator().manual_seed(<int>)`")  # fmt: skip
        elif fn == "DataLoader":
            shuffle = keyword(call, "shuffle")
            if shuffle is not None and not (isinstance(shuffle.value, ast.Constant) and not shuffle.value.value):
                yield Hit(call, f"`{_src(call)}` shuffles with torch's unseeded global generator",
                          fix="pass `generator=torch.Generator().manual_seed(<int>)` or call `torch.manual_seed(<int>)`")  # fmt: skip


# -------------------------------------------------------------------------------------------
# RPF104 tensorflow
# -------------------------------------------------------------------------------------------


def _is_tf(name: str) -> bool:
    return name.startswith(("tensorflow.", "keras.", "tf_keras."))


def _keras_part(name: str) -> str:
    """``tensorflow.keras.layers.Dense`` → ``layers.Dense``."""
    for prefix in ("tensorflow.keras.", "tensorflow.python.keras.", "keras.", "tf_keras."):
        if name.startswith(prefix):
            return name[len(prefix) :]
    return ""


@rule(
    "RPF104",
    "unseeded-tensorflow",
    severity="error",
    summary="TensorFlow/Keras draws random numbers without `tf.random.set_seed` or an op seed.",
    rationale="""Without a global seed, TensorFlow seeds random ops, weight initialisers,
    dropout and `Dataset.shuffle` non-deterministically, so two runs train different models.""",
    fix="""Call `tf.keras.utils.set_random_seed(<int>)` (seeds Python, numpy and TensorFlow) or
    `tf.random.set_seed(<int>)` once at start-up, or use `@repro_task(seed=<int>)`; pass
    `seed=` to `Dataset.shuffle` and to random ops.""",
)
def unseeded_tensorflow(ctx: ModuleContext) -> Iterator[Hit]:
    if not ctx.imports("tensorflow", "keras", "tf_keras") or "tensorflow" in module_seeds(ctx):
        return
    for call in ctx.calls():
        if keyword(call, "seed") is not None or seeded_at(ctx, call, "tensorflow"):
            continue
        name = ctx.call_name(call)
        if name is None:
            if ctx.method_name(call) == "shuffle" and len(call.args) < 2:
                # ds.shuffle(buffer) on a tf.data pipeline built in this function
                for origin in ctx.resolve_origin(call.func):
                    oname = ctx.call_name(origin) if isinstance(origin, ast.Call) else None
                    if oname and oname.startswith("tensorflow.data."):
                        yield Hit(call, f"`{_src(call)}` shuffles with an unseeded TensorFlow generator",
                                  fix="pass `seed=<int>` or call `tf.random.set_seed(<int>)`")  # fmt: skip
                        break
            continue
        if not _is_tf(name):
            continue
        fn = name.rsplit(".", 1)[-1]
        keras = _keras_part(name)
        if name.startswith("tensorflow.random.") and fn in TF_DRAWS:
            yield Hit(call, f"`{_src(call)}` draws from TensorFlow's unseeded generator")
        elif name in {"tensorflow.random.Generator.from_non_deterministic_state"}:
            yield Hit(call, f"`{_src(call)}` makes a generator seeded from OS entropy",
                      fix="use `tf.random.Generator.from_seed(<int>)`")  # fmt: skip
        elif keras.startswith("layers.") and fn in KERAS_LAYERS:
            yield Hit(call, f"`{_src(call)}` initialises weights (or masks) from TensorFlow's unseeded generator")
        elif keras.startswith("initializers.") and fn[:1].isupper() and fn not in {"Zeros", "Ones", "Constant", "Identity"}:
            yield Hit(call, f"`{_src(call)}` initialises weights without a seed", fix="pass `seed=<int>`")


# -------------------------------------------------------------------------------------------
# RPF105 jax
# -------------------------------------------------------------------------------------------


@rule(
    "RPF105",
    "jax-key-from-entropy",
    severity="error",
    summary="A JAX PRNG key made from the clock, OS entropy or another unseeded source.",
    rationale="""JAX has no global generator: every random draw is a function of an explicit
    key. A key built from `time.time()`, `os.urandom` or an unseeded draw makes every run
    different, defeating JAX's design.""",
    fix="""Build the root key from a fixed integer, `key = jax.random.key(<int>)` (or
    `PRNGKey(<int>)`), pass it in as a parameter, and derive the rest with `jax.random.split`.""",
)
def jax_key_from_entropy(ctx: ModuleContext) -> Iterator[Hit]:
    if not ctx.imports("jax"):
        return
    for call in ctx.calls():
        name = ctx.call_name(call)
        if name not in {"jax.random.PRNGKey", "jax.random.key", "jax.random.wrap_key_data"}:
            continue
        unseeded_np = not seeded_at(ctx, call, "numpy")
        unseeded_py = not seeded_at(ctx, call, "python")
        arg = _seed_arg(call, "seed")
        if arg is None or is_none(arg):
            yield Hit(call, f"`{_src(call)}` has no seed")
            continue
        src = entropy_source(ctx, arg)
        if src is not None:
            sname = ctx.call_name(src) if isinstance(src, ast.Call) else None
            seeded_draw = sname is not None and (
                (sname.startswith("numpy.random.") and not unseeded_np) or (sname.startswith("random.") and not unseeded_py and sname != "random.SystemRandom")
            )
            if not seeded_draw:
                yield Hit(call, f"`{_src(call)}` builds a key from `{_src(src)}`, which differs on every run")


__all__ = ["ENTROPY_CALLS", "entropy_source", "module_seeds", "seeded_at", "seeded_tasks"]
