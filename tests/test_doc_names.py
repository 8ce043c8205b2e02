"""The names the README and docs/*.md cite exist: `module.function` of the package, repository
paths such as `idmvae_jax/benchmarking/op_profile.py` or `launch/local.sh`, and `tests/FILE.py::test_name`."""
import importlib
import importlib.util
import os
import re

from test_doc_commands import DOCS, ROOT

_CODE = re.compile(r"`([^`\n]+)`")
_DOTTED = re.compile(r"^(?:idmvae_jax\.)?([a-z_][a-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+)(?:\(.*\))?$")
_PATH = re.compile(r"^((?:idmvae_jax|launch|configs|examples|tests|docs|\.ci)/[\w./-]*\w)(?:::(\w+))?(?:[:\[].*)?$")


def _spans():
    for path in DOCS:
        with open(path) as f:
            text = f.read()
        text = re.sub(r"```.*?```", "", text, flags=re.S)  # code blocks run in test_docs / test_doc_commands
        for span in _CODE.findall(text):
            yield os.path.relpath(path, ROOT), span.strip()


def _resolve(dotted: str):
    """Import the longest idmvae_jax.* module prefix of `dotted`, getattr the rest; None if its
    first part is not a package module (e.g. `jax.jit`, `config.model.remat`)."""
    parts = dotted.split(".")
    if importlib.util.find_spec(f"idmvae_jax.{parts[0]}") is None:
        return None
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module("idmvae_jax." + ".".join(parts[:i]))
        except ImportError:
            continue
        for name in parts[i:]:
            obj = getattr(obj, name)
        return obj
    return None


_FILE_SUFFIXES = (".py", ".json", ".jsonl", ".npz", ".md", ".png", ".sh", ".zip", ".txt")


def _config_keys():
    """Every key path of the configs' common defaults, e.g. 'train.num_steps'."""
    from idmvae_jax import config_defaults

    def walk(d, prefix):
        for k, v in d.items():
            yield prefix + k
            if hasattr(v, "items"):
                yield from walk(v, prefix + k + ".")
    return set(walk(config_defaults.base_config(), ""))


def test_cited_package_names_and_config_keys_exist():
    """`objective.infonce`-style spans resolve in the package; `train.num_steps`/`config.model.remat`
    spans (whose first part names a config section) are keys of the default config."""
    keys = _config_keys()
    sections = {k for k in keys if "." not in k}
    checked, missing = 0, []
    for doc, span in _spans():
        m = _DOTTED.match(span)
        if not m or span.endswith(_FILE_SUFFIXES):
            continue
        dotted = m.group(1)
        key = dotted[len("config."):] if dotted.startswith("config.") else dotted
        if key in keys and not span.startswith("idmvae_jax."):
            checked += 1
            continue
        try:
            if _resolve(dotted) is not None:
                checked += 1
                continue
            error = "not a package name"
        except AttributeError as e:
            error = str(e)
        if key.split(".")[0] in sections or importlib.util.find_spec(f"idmvae_jax.{dotted.split('.')[0]}"):
            missing.append(f"{doc}: `{span}` (neither a config key nor a package name: {error})")
    assert not missing, "\n".join(missing)
    assert checked >= 10, checked  # the docs cite package functions; a parser bug would find none


def test_cited_paths_and_tests_exist():
    checked, missing = 0, []
    for doc, span in _spans():
        m = _PATH.match(span)
        if not m or any(ch in m.group(1) for ch in "*<>") or m.group(1).endswith("/"):
            continue
        path = os.path.join(ROOT, m.group(1))
        if not os.path.exists(path):
            missing.append(f"{doc}: `{span}` (no {m.group(1)})")
        elif m.group(2) and not re.search(rf"^def {m.group(2)}\(", open(path).read(), re.M):
            missing.append(f"{doc}: `{span}` (no test {m.group(2)} in {m.group(1)})")
        checked += 1
    assert not missing, "\n".join(missing)
    assert checked >= 10, checked
