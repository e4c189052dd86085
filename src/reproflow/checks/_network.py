"""RPF501: data read over the network without a checksum or a pinned version."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator

from ._context import ModuleContext, Scope, const_str, is_none, keyword
from ._registry import Hit, rule

#: Calls that always fetch over the network.
FETCH_CALLS = frozenset(
    {
        "requests.get", "requests.request", "requests.api.get", "httpx.get", "httpx.request",
        "urllib.request.urlopen", "urllib.request.urlretrieve", "urllib.urlopen",
        "urllib2.urlopen", "wget.download",
    }
)  # fmt: skip
#: Readers that fetch when given an http(s)/ftp URL.
URL_READERS_PREFIXES = ("pandas.read_", "polars.read_", "polars.scan_", "dask.dataframe.read_", "xarray.open_")
URL_READERS = frozenset({"fsspec.open", "fsspec.open_files", "fsspec.filesystem", "numpy.loadtxt", "numpy.genfromtxt", "pyarrow.csv.read_csv"})
#: (call, keyword that pins it): pinned when the keyword is given and not None.
PINNABLE = {
    "pooch.retrieve": "known_hash",
    "tensorflow.keras.utils.get_file": "file_hash",
    "keras.utils.get_file": "file_hash",
    "torch.hub.load_state_dict_from_url": "check_hash",
    "torch.hub.download_url_to_file": "hash_prefix",
    "datasets.load_dataset": "revision",
    "huggingface_hub.hf_hub_download": "revision",
    "huggingface_hub.snapshot_download": "revision",
}
_URL_RE = re.compile(r"^(?:https?|ftp)://", re.IGNORECASE)
#: A commit id or content hash inside a URL pins what it serves.
_PINNED_URL_RE = re.compile(r"(?<![0-9a-f])(?:[0-9a-f]{40}|[0-9a-f]{64})(?![0-9a-f])", re.IGNORECASE)
_CHECK_WORDS = ("hash", "checksum", "digest", "sha256", "sha1", "md5", "verify")


def _url_value(ctx: ModuleContext, node: ast.AST | None) -> str | None:
    """The URL a literal, f-string or local constant holds, if it is one."""
    if node is None:
        return None
    text = const_str(node)
    if text is None and isinstance(node, ast.Name):
        value = ctx.latest_value(node)
        text = const_str(value) if value is not None else None
    if text is not None and _URL_RE.match(text):
        return text
    return None


def _has_check(ctx: ModuleContext, scope: Scope) -> bool:
    """A checksum is computed or compared in the same function (or module body)."""
    for node in scope.nodes:
        if isinstance(node, ast.Call):
            name = ctx.call_name(node) or ""
            if name.startswith("hashlib.") or name in {"reproflow.hash_path", "reproflow.capture._files.hash_path"}:
                return True
            callee = ctx.method_name(node) or (node.func.id if isinstance(node.func, ast.Name) else "")
            if any(w in callee.lower() for w in _CHECK_WORDS):
                return True
    return False


def _pinned_url(url: str | None) -> bool:
    return url is not None and bool(_PINNED_URL_RE.search(url))


@rule(
    "RPF501",
    "unpinned-network-data",
    severity="warning",
    summary="Data is read over the network without a checksum or a pinned version.",
    rationale="""What a URL serves can change at any time (a dataset is updated, a file is
    replaced, a branch moves), so a replay can silently compute on different data.""",
    fix="""Verify what you download against a known SHA-256 (`pooch.retrieve(url,
    known_hash="sha256:...")`, or `hashlib.sha256(data).hexdigest()` compared to a constant),
    pin a version (`revision="<commit>"`, a URL with a commit id), or download once into the
    project and read the local copy (reproflow then hashes it as an input).""",
)
def unpinned_network_data(ctx: ModuleContext) -> Iterator[Hit]:
    for call in ctx.calls():
        name = ctx.call_name(call)
        if name is None:
            continue
        if name in PINNABLE:
            kw = keyword(call, PINNABLE[name])
            pinned = kw is not None and not is_none(kw.value) and not (isinstance(kw.value, ast.Constant) and kw.value.value is False)
            if name.startswith("pooch.") and len(call.args) > 1 and not is_none(call.args[1]):
                pinned = True
            if not pinned:
                yield Hit(call, f"`{name.rsplit('.', 1)[-1]}(...)` fetches data without `{PINNABLE[name]}=`, so what it gets can change",
                          fix=f"pass `{PINNABLE[name]}=` with the expected hash or commit")  # fmt: skip
            continue
        if name.startswith("transformers.") and name.endswith(".from_pretrained"):
            if keyword(call, "revision") is None and not _url_is_local(call):
                yield Hit(call, "`from_pretrained(...)` downloads the latest revision of the model",
                          fix='pass `revision="<commit sha>"`')  # fmt: skip
            continue
        if name in FETCH_CALLS:
            url = _url_value(ctx, call.args[0] if call.args else (keyword(call, "url").value if keyword(call, "url") else None))  # type: ignore[union-attr]
        elif name.startswith(URL_READERS_PREFIXES) or name in URL_READERS:
            first = call.args[0] if call.args else None
            if name == "fsspec.filesystem":
                protocol = const_str(first)
                if protocol not in {"http", "https", "ftp"}:
                    continue
                url = protocol + "://"
            else:
                url = _url_value(ctx, first)
                if url is None:
                    continue
        else:
            continue
        if _pinned_url(url) or _has_check(ctx, ctx.scope_of(call)):
            continue
        shown = f" {url}" if url and len(url) <= 70 else ""
        yield Hit(call, f"`{name.rsplit('.', 1)[-1]}(...)` reads{shown} over the network with no checksum check nearby: the data can change between runs")


def _url_is_local(call: ast.Call) -> bool:
    first = const_str(call.args[0]) if call.args else None
    return first is not None and (first.startswith((".", "/")) or first.startswith("~"))


__all__ = ["FETCH_CALLS"]
