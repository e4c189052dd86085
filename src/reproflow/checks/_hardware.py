"""RPF701-RPF702: GPU kernels and thread counts that make floating-point results vary."""

from __future__ import annotations

import ast
from collections.abc import Iterator

from ._context import ModuleContext, Scope, const_str, keyword
from ._flow import Taint
from ._registry import Hit, rule

_TORCH_DETERMINISTIC = frozenset({"torch.use_deterministic_algorithms", "torch.set_deterministic", "torch.set_deterministic_debug_mode"})
_TF_DETERMINISTIC = frozenset(
    {"tensorflow.config.experimental.enable_op_determinism", "tensorflow.config.enable_op_determinism"}
)
_CPU_COUNT = frozenset({"os.cpu_count", "os.process_cpu_count", "multiprocessing.cpu_count", "psutil.cpu_count", "os.sched_getaffinity", "joblib.cpu_count"})
_THREAD_SETTERS = frozenset(
    {"torch.set_num_threads", "torch.set_num_interop_threads", "threadpoolctl.threadpool_limits", "mkl.set_num_threads",
     "numexpr.set_num_threads", "numba.set_num_threads", "cv2.setNumThreads", "tensorflow.config.threading.set_intra_op_parallelism_threads",
     "tensorflow.config.threading.set_inter_op_parallelism_threads"}
)  # fmt: skip
_THREAD_VARS = frozenset({"OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS"})


def _falsy(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and not node.value


def _torch_deterministic(ctx: ModuleContext) -> bool:
    for call in ctx.calls():
        if ctx.call_name(call) in _TORCH_DETERMINISTIC:
            arg = call.args[0] if call.args else (keyword(call, "mode").value if keyword(call, "mode") else None)  # type: ignore[union-attr]
            if not _falsy(arg):
                return True
    for node in ctx.nodes:
        if isinstance(node, ast.Assign) and not _falsy(node.value):
            for target in node.targets:
                if ctx.qualname(target) == "torch.backends.cudnn.deterministic":
                    return True
    return False


def _tf_deterministic(ctx: ModuleContext) -> bool:
    for call in ctx.calls():
        if ctx.call_name(call) in _TF_DETERMINISTIC:
            return True
    for node in ctx.nodes:  # os.environ["TF_DETERMINISTIC_OPS"] = "1"
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Subscript) and const_str(target.slice) == "TF_DETERMINISTIC_OPS" and not _falsy(node.value):
                    return True
        if isinstance(node, ast.Call) and ctx.call_name(node) in {"os.environ.setdefault", "os.putenv"}:
            if node.args and const_str(node.args[0]) == "TF_DETERMINISTIC_OPS":
                return True
    return False


def _is_cuda_literal(node: ast.AST | None) -> bool:
    text = const_str(node)
    return text is not None and (text == "cuda" or text.startswith("cuda:"))


def _cuda_use(ctx: ModuleContext, call: ast.Call) -> bool:
    name = ctx.call_name(call)
    if name == "torch.cuda.is_available" or name == "torch.device" and call.args and _is_cuda_literal(call.args[0]):
        return True
    if name is None and ctx.method_name(call) == "cuda":
        return True
    if ctx.method_name(call) == "to" and any(_is_cuda_literal(a) for a in call.args):
        return True
    device = keyword(call, "device")
    return name is not None and name.startswith("torch.") and device is not None and _is_cuda_literal(device.value)


def _first_per_scope(ctx: ModuleContext, calls: list[ast.Call]) -> Iterator[ast.Call]:
    seen: set[int] = set()
    for call in sorted(calls, key=lambda c: (c.lineno, c.col_offset)):
        scope_id = id(ctx.scope_of(call).node)
        if scope_id not in seen:
            seen.add(scope_id)
            yield call


@rule(
    "RPF701",
    "nondeterministic-gpu-kernels",
    severity="warning",
    summary="torch on CUDA without `torch.use_deterministic_algorithms(True)`, or TensorFlow without op determinism.",
    rationale="""Many GPU kernels (atomics in scatter/index_add, cuDNN convolution algorithms
    picked by benchmarking, cuBLAS split reductions) sum in a different order on every run, so
    the same code on the same data gives slightly different numbers that grow during training.""",
    fix="""torch: call `torch.use_deterministic_algorithms(True)`, set
    `torch.backends.cudnn.benchmark = False` and the environment variable
    `CUBLAS_WORKSPACE_CONFIG=:4096:8`. TensorFlow: call
    `tf.config.experimental.enable_op_determinism()` (with a seed).""",
)
def nondeterministic_gpu_kernels(ctx: ModuleContext) -> Iterator[Hit]:
    if ctx.imports("torch") and not _torch_deterministic(ctx):
        uses = [c for c in ctx.calls() if _cuda_use(ctx, c)]
        for call in _first_per_scope(ctx, uses):
            yield Hit(call, f"`{ast.unparse(call.func)}` puts work on CUDA, and this module never enables torch's deterministic algorithms",
                      fix="call `torch.use_deterministic_algorithms(True)` once at start-up and set `CUBLAS_WORKSPACE_CONFIG=:4096:8`")  # fmt: skip
    if ctx.imports("tensorflow", "keras", "tf_keras") and not _tf_deterministic(ctx):
        uses = []
        for call in ctx.calls():
            name = ctx.call_name(call) or ""
            if name.startswith(("tensorflow.", "keras.", "tf_keras.")) and not name.startswith(("tensorflow.config.", "tensorflow.random.set_seed")):
                uses.append(call)
            elif name == "" and ctx.method_name(call) in {"fit", "train_on_batch"}:
                uses.append(call)
        for call in _first_per_scope(ctx, uses):
            yield Hit(call, f"`{ast.unparse(call.func)}` runs TensorFlow ops, and this module never calls `tf.config.experimental.enable_op_determinism()`",
                      fix="call `tf.keras.utils.set_random_seed(<int>)` and `tf.config.experimental.enable_op_determinism()` at start-up")  # fmt: skip


def _cpu_taint(ctx: ModuleContext, scope: Scope) -> Taint:
    return Taint(ctx, scope, lambda c: ctx.call_name(c) in _CPU_COUNT)


@rule(
    "RPF702",
    "thread-count-from-machine",
    severity="warning",
    summary="The BLAS/OpenMP thread count is set from this machine's CPU count.",
    rationale="""Multithreaded BLAS and OpenMP reductions split sums by thread, so the result
    of a matrix product or a sum depends on the number of threads; deriving it from
    `os.cpu_count()` makes results differ between machines.""",
    fix="""Set a fixed thread count (`torch.set_num_threads(4)`, `OMP_NUM_THREADS=4`), or pin
    the numerics: `MKL_CBWR=COMPATIBLE` for MKL, one thread for the critical reductions.""",
)
def thread_count_from_machine(ctx: ModuleContext) -> Iterator[Hit]:
    for scope in ctx.scopes.values():
        taint: Taint | None = None
        for node in scope.nodes:
            value: ast.AST | None = None
            if isinstance(node, ast.Call):
                name = ctx.call_name(node)
                if name in _THREAD_SETTERS:
                    value = node.args[0] if node.args else (keyword(node, "limits").value if keyword(node, "limits") else None)  # type: ignore[union-attr]
                elif name in {"os.environ.setdefault", "os.putenv"} and len(node.args) > 1 and const_str(node.args[0]) in _THREAD_VARS:
                    value = node.args[1]
            elif isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Subscript) and ctx.qualname(target.value) == "os.environ" and const_str(target.slice) in _THREAD_VARS:
                        value = node.value
            if value is None:
                continue
            taint = taint or _cpu_taint(ctx, scope)
            src = taint.source_in(value)
            if src is not None:
                yield Hit(node, f"the thread count comes from `{ast.unparse(src)}`, so reductions split differently on every machine")


__all__: list[str] = []
