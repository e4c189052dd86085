"""Files that hold secrets, by name and by content: left out of source snapshots and git diffs.

By name: ``.env`` and ``*.env`` / ``.env.*`` (not ``.env.example`` & co.), ``.netrc``,
``.pypirc``, ``.npmrc``, ``.git-credentials``, ``.pgpass``, ``.my.cnf``, ``.s3cfg``, ``.boto``,
``credentials`` / ``credentials.json`` / ``*credentials*.json``, ``client_secret*.json``,
``service-account*.json``, ``secrets.*``, ``id_rsa`` & co., ``.htpasswd``, ``*.pem``, ``*.key``,
``*.p12``, ``*.pfx``, ``*.jks``, ``*.keystore``, ``*.kdbx``, ``*.ppk``, ``*.keytab``.

By content (a few byte searches per file, then one regex over files that may hold a token):
private keys (PEM, OpenSSH, PGP, PuTTY), cloud service-account JSON, a Docker config with
``auths``, ``.netrc`` lines (``machine ... password``), ``.pypirc``/AWS credential files, and
tokens of the formats :mod:`reproflow.values._redact` knows (GitHub, GitLab, AWS, Slack, Stripe, Google,
Hugging Face, OpenAI/Anthropic, npm, PyPI).
"""

from __future__ import annotations

import posixpath
import re

_NAMES = frozenset({".env", ".netrc", "_netrc", ".pypirc", ".git-credentials", ".npmrc", "credentials",
                    "credentials.json", "id_rsa", "id_dsa", "id_ecdsa", "id_ed25519", ".htpasswd", ".pgpass",
                    ".my.cnf", ".s3cfg", ".boto", ".dockercfg"})
_SUFFIXES = (".pem", ".key", ".p12", ".pfx", ".jks", ".keystore", ".kdbx", ".ppk", ".keytab", ".env")
_SAFE_SUFFIXES = (".example", ".sample", ".template", ".dist")
_JSON_NAME = re.compile(r"(?i)(credentials|client_secret|service[-_]?account|secrets?)[^/]*\.json$")
_SECRETS_NAME = re.compile(r"(?i)^secrets?\.(json|ya?ml|toml|ini|cfg|conf|env|txt)$")

#: (reason, byte pattern): a file matching one holds credentials.
_CONTENT: tuple[tuple[str, re.Pattern[bytes]], ...] = (
    ("private key", re.compile(rb"-----BEGIN[A-Z0-9 ]*PRIVATE KEY|PuTTY-User-Key-File-\d+: ")),
    ("cloud service-account key", re.compile(rb'"type"\s*:\s*"service_account"|"private_key"\s*:\s*"')),
    ("Docker config with auths", re.compile(rb'"auths"\s*:\s*\{[^}]*"auth"\s*:\s*"[^"]')),
    ("netrc credentials", re.compile(rb"(?m)^\s*machine\s+\S+[^\n]*\bpassword\s+\S|^\s*password\s+\S+\s*$")),
    ("credentials file", re.compile(rb"(?im)^\s*(?:password|aws_secret_access_key|aws_session_token)\s*[=:]\s*\S")),
)
_HINTS = (b"PRIVATE KEY", b"PuTTY", b"service_account", b"private_key", b"auths", b"machine", b"password",
          b"aws_s")
_TOKENS = re.compile(
    rb"\b(?:gh[pousr]_[A-Za-z0-9_]{36,255}|github_pat_[A-Za-z0-9_]{60,255}|glpat-[A-Za-z0-9_\-]{20,50}"
    rb"|(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}|xox[abposr]-[0-9]+-[A-Za-z0-9\-]{10,}|[rs]k_live_[0-9A-Za-z]{24,}"
    rb"|AIza[0-9A-Za-z_\-]{35}|hf_[A-Za-z0-9]{34,}|sk-(?:proj|ant-api\d*)-[A-Za-z0-9_\-]{20,}"
    rb"|npm_[A-Za-z0-9]{36}|pypi-AgE[A-Za-z0-9_\-]{50,})"
)


def is_secret_file(name: str) -> bool:
    """Whether a file name says it holds credentials (``.env``, ``*.pem``, ``credentials.json``...)."""
    base = posixpath.basename(name)
    low = base.lower()
    if low.endswith(_SAFE_SUFFIXES):
        return False
    if base in _NAMES or low.endswith(_SUFFIXES) or low.startswith(".env."):
        return True
    return bool(_JSON_NAME.search(low) or _SECRETS_NAME.match(low))


#: Code, where ``password = ...`` is an assignment, not a stored credential.
_CODE_SUFFIXES = (".py", ".pyi", ".pyx", ".ipynb", ".js", ".ts", ".java", ".go", ".rs", ".rb", ".sh", ".r",
                  ".jl", ".c", ".cc", ".cpp", ".h", ".md", ".rst")
_CONFIG_ONLY = frozenset({"netrc credentials", "credentials file"})


def secret_content(data: bytes, name: str = "") -> str | None:
    """Why ``data`` holds credentials (``"private key"``, ``"token (ghp_...)"``...), or None.

    ``name`` (the file's name) keeps the config-file rules (``password = ...``) off code files.
    """
    if any(h in data for h in _HINTS):
        code = name.lower().endswith(_CODE_SUFFIXES)
        for reason, pattern in _CONTENT:
            if code and reason in _CONFIG_ONLY:
                continue
            if pattern.search(data):
                return reason
    m = _TOKENS.search(data)
    if m:
        return f"token ({m.group(0)[:4].decode('ascii', 'replace')}...)"
    return None


def secret_reason(name: str, data: bytes | None) -> str | None:
    """Why the file ``name`` (with content ``data`` when read) must not be stored, or None."""
    if is_secret_file(name):
        return "secret file (by name)"
    if data is not None:
        found = secret_content(data, name)
        if found:
            return f"secret file (holds a {found})"
    return None




_DIFF_SECTION = re.compile(rb"(?m)^diff --git ")
_DIFF_NAMES = re.compile(rb"^diff --git a/(.*?) b/(.*?)$", re.M)
_LINE_MARK = re.compile(rb"(?m)^[+\- ]")


def drop_secret_files(diff: bytes) -> tuple[bytes, list[str]]:
    """``git diff`` output without the sections of secret files (by name, or by the content of
    their changed lines), and the names left out."""
    starts = [m.start() for m in _DIFF_SECTION.finditer(diff)]
    if not starts:
        return diff, []
    kept = [diff[: starts[0]]]
    dropped: list[str] = []
    for i, start in enumerate(starts):
        section = diff[start: starts[i + 1] if i + 1 < len(starts) else len(diff)]
        m = _DIFF_NAMES.match(section)
        names = [n.decode("utf-8", "surrogateescape") for n in (m.groups() if m else ())]
        body = _LINE_MARK.sub(b"", section)
        if any(secret_reason(n, body) for n in dict.fromkeys(names)):
            dropped.append(names[-1])
        else:
            kept.append(section)
    return b"".join(kept), dropped


__all__ = ["drop_secret_files", "is_secret_file", "secret_content", "secret_reason"]
