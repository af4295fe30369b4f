"""The ast walk behind ``aiobucket infra``: declarations, uses and the permissions they need."""

from __future__ import annotations

import ast
import functools
import importlib
import inspect
import os
import typing
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["BucketDecl", "Finding", "Manifest", "analyse"]

PERMISSIONS = (
    "Attrser",
    "Downloader",
    "Lister",
    "PublicURLer",
    "Remover",
    "SignedDownloader",
    "SignedUploader",
    "Uploader",
)
PROTOCOL_PERMISSIONS: dict[str, frozenset[str]] = {p: frozenset({p}) for p in PERMISSIONS}
PROTOCOL_PERMISSIONS["ReadWriter"] = frozenset(PERMISSIONS) - {"PublicURLer"}

METHOD_PERMISSION = {
    "upload": "Uploader",
    "download": "Downloader",
    "download_to": "Downloader",
    "list": "Lister",
    "list_versions": "Lister",
    "attrs": "Attrser",
    "exists": "Attrser",
    "remove": "Remover",
    "remove_many": "Remover",
    "signed_upload_url": "SignedUploader",
    "signed_upload_form": "SignedUploader",
    "signed_download_url": "SignedDownloader",
    "public_url": "PublicURLer",
}
_HARMLESS_ATTRS = frozenset({"name", "config"})

# aiobucket's own functions that take a bucket (or a ref), by the parameter that does. A
# bucket passed there is followed: it needs the permissions the parameter's annotation
# names (open_range's and serve's is a Protocol of Downloader and Attrser), read from the
# function. tests/test_infra.py checks that every public helper taking a bucket is here.
HELPERS = {"aiobucket.http.open_range": "bucket", "aiobucket.http.serve": "bucket"}
_SKIP_DIRS = frozenset({"__pycache__", "node_modules", "site-packages", "venv"})


# -- results ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BucketDecl:
    name: str
    versioned: bool | None
    """None when the config is not a literal the analysis can read."""
    public: bool | None
    module: str
    variable: str | None
    file: str
    line: int


@dataclass(frozen=True, slots=True, order=True)
class Finding:
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


@dataclass
class Manifest:
    buckets: dict[str, BucketDecl] = field(default_factory=dict)
    services: dict[str, dict[str, set[str]]] = field(default_factory=dict)
    warnings: list[Finding] = field(default_factory=list)

    def grant(self, service: str, bucket: str, perms: set[str] | frozenset[str]) -> None:
        self.services.setdefault(service, {}).setdefault(bucket, set()).update(perms)


# -- symbols: what a name or expression stands for ----------------------------


@dataclass(frozen=True, slots=True)
class _ModuleSym:
    name: str


@dataclass(frozen=True, slots=True)
class _AiobucketSym:
    attr: str | None  # None: the aiobucket module itself
    module: str = field(default="aiobucket", compare=False)  # where attr was found: for HELPERS

    @property
    def qualname(self) -> str:
        return f"{self.module}.{self.attr}"


@functools.cache
def helper_permissions(qualname: str) -> tuple[int, str, frozenset[str]]:
    """(position, name, permissions) of the bucket parameter of an aiobucket helper."""
    module, _, name = qualname.rpartition(".")
    func = getattr(importlib.import_module(module), name)
    param = HELPERS[qualname]
    position = list(inspect.signature(func).parameters).index(param)
    protocol = typing.get_type_hints(func)[param]
    perms = frozenset(c.__name__ for c in protocol.__mro__ if c.__name__ in PROTOCOL_PERMISSIONS)
    return position, param, frozenset().union(*(PROTOCOL_PERMISSIONS[p] for p in perms))


@dataclass(frozen=True, slots=True)
class _BucketSym:
    bucket: str
    variable: str


@dataclass(frozen=True, slots=True)
class _RefSym:
    bucket: str
    perms: frozenset[str]
    label: str


@dataclass(frozen=True, slots=True)
class _ProtocolSym:
    perms: frozenset[str]


@dataclass(frozen=True, slots=True)
class _AliasSym:
    """A variable assigned from a bucket: its uses cannot be attributed reliably."""

    bucket: str
    variable: str
    name: str
    line: int


_Sym = _ModuleSym | _AiobucketSym | _BucketSym | _RefSym | _ProtocolSym | _AliasSym
# A module-level binding, resolved lazily: ("module", target) | ("from", module, attr)
# | ("value", expr) | ("class", ClassDef).
_Binding = tuple[Any, ...]


@dataclass
class _Module:
    name: str
    file: str  # relative to the analysed root, with "/"
    service: str
    tree: ast.Module
    is_package: bool
    bindings: dict[str, _Binding] = field(default_factory=dict)
    parents: dict[ast.AST, ast.AST] = field(default_factory=dict)


# -- the analysis ----------------------------------------------------------------


def analyse(root: str | os.PathLike[str]) -> Manifest:
    """Analyse every ``.py`` file under ``root`` without importing any of it."""
    return _Analysis(Path(root)).run()


class _Analysis:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.modules: dict[str, _Module] = {}
        self.manifest = Manifest()
        self._resolving: set[tuple[str, str]] = set()
        self._memo: dict[tuple[str, str], _Sym | None] = {}
        self._packages: set[str] = set()  # every dotted prefix of a module name
        self._declared_by: dict[str, set[str]] = {}  # bucket name -> the services declaring it

    def warn(self, mod: _Module, node: ast.AST, message: str) -> None:
        self.manifest.warnings.append(Finding(mod.file, getattr(node, "lineno", 0), message))

    def run(self) -> Manifest:
        for path in _python_files(self.root):
            self._load(path)
        for name in self.modules:
            parts = name.split(".")
            self._packages.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
        for mod in list(self._unique_modules()):
            self._declarations(mod)
        for mod in self._unique_modules():
            _Visitor(self, mod).visit(mod.tree)
        self.manifest.warnings = sorted(set(self.manifest.warnings))
        return self.manifest

    def _unique_modules(self) -> Iterator[_Module]:
        seen: set[int] = set()
        for mod in self.modules.values():
            if id(mod) not in seen:
                seen.add(id(mod))
                yield mod

    # -- loading ------------------------------------------------------------

    def _load(self, path: Path) -> None:
        rel = path.relative_to(self.root)
        file = rel.as_posix()
        parts = list(rel.with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        service = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        try:
            tree = ast.parse(path.read_bytes(), filename=file)
        except (SyntaxError, ValueError) as exc:
            line = getattr(exc, "lineno", None) or 0
            self.manifest.warnings.append(Finding(file, line, f"cannot parse this file, skipped: {exc}"))
            return
        mod = _Module(".".join(parts), file, service, tree, is_package)
        for node in ast.walk(tree):
            for child in ast.iter_child_nodes(node):
                mod.parents[child] = node
        _collect_bindings(mod, tree.body, mod.bindings)
        if mod.name:
            self.modules[mod.name] = mod
        # A root that is itself a package is imported by its own name too.
        if (self.root / "__init__.py").exists():
            self.modules[".".join([self.root.resolve().name, *parts])] = mod

    def _is_module(self, name: str) -> bool:
        return name in self._packages

    # -- declarations ---------------------------------------------------------

    def _declarations(self, mod: _Module) -> None:
        for node in ast.walk(mod.tree):
            if not isinstance(node, ast.Call) or not self._is_aiobucket(mod, node.func, "Bucket", {}):
                continue
            parent = mod.parents.get(node)
            variable = None
            if (
                isinstance(parent, ast.Assign | ast.AnnAssign)
                and mod.parents.get(parent) is mod.tree
                and len(_targets(parent)) == 1
                and isinstance(_targets(parent)[0], ast.Name)
            ):
                variable = _targets(parent)[0].id  # type: ignore[attr-defined]
            decl = self._declaration(mod, node, variable)
            if decl is None:
                continue
            if variable is None:
                self.warn(
                    mod,
                    node,
                    f"Bucket({decl.name!r}) is not assigned to a module-level name; declare buckets "
                    "once at module level so their uses can be found",
                )
            other = self.manifest.buckets.get(decl.name)
            if other is not None and (other.file, other.line) != (decl.file, decl.line):
                # Separate services (programs) each declare the buckets they share; that is
                # fine while they agree. Within one service, a bucket is declared once.
                differs = (other.versioned, other.public) != (decl.versioned, decl.public)
                if differs or mod.service in self._declared_by[decl.name]:
                    why = " with a different BucketConfig" if differs else ""
                    self.warn(
                        mod,
                        node,
                        f"bucket {decl.name!r} is declared again{why} (first at {other.file}:{other.line})",
                    )
                self._declared_by[decl.name].add(mod.service)
                continue
            self.manifest.buckets[decl.name] = decl
            self._declared_by[decl.name] = {mod.service}

    def _declaration(self, mod: _Module, call: ast.Call, variable: str | None) -> BucketDecl | None:
        name_node = call.args[0] if call.args else _keyword(call, "name")
        if not (isinstance(name_node, ast.Constant) and isinstance(name_node.value, str)):
            self.warn(mod, call, "Bucket() name is not a string literal; this bucket is not in the manifest")
            return None
        config: dict[str, bool | None] = {"versioned": False, "public": False}
        cfg = call.args[1] if len(call.args) > 1 else _keyword(call, "config")
        if cfg is not None and not (isinstance(cfg, ast.Constant) and cfg.value is None):
            if isinstance(cfg, ast.Call) and self._is_aiobucket(mod, cfg.func, "BucketConfig", {}):
                fields = dict(zip(("versioned", "public"), cfg.args, strict=False))
                fields.update({k.arg: k.value for k in cfg.keywords if k.arg in config})
                for key, value in fields.items():
                    if isinstance(value, ast.Constant) and isinstance(value.value, bool):
                        config[key] = value.value
                    else:
                        config[key] = None
                        self.warn(mod, value, f"BucketConfig({key}=...) is not a literal True/False")
            else:
                config = {"versioned": None, "public": None}
                self.warn(
                    mod, cfg, f"the config of bucket {name_node.value!r} is not a literal BucketConfig(...)"
                )
        return BucketDecl(
            name=name_node.value,
            versioned=config["versioned"],
            public=config["public"],
            module=mod.name,
            variable=variable,
            file=mod.file,
            line=call.lineno,
        )

    def _is_aiobucket(self, mod: _Module, node: ast.expr, attr: str, scope: dict[str, _Sym | None]) -> bool:
        return self.resolve(mod, node, [scope]) == _AiobucketSym(attr)

    # -- resolution -----------------------------------------------------------

    def module_symbol(self, module: str, name: str) -> _Sym | None:
        """What ``name`` stands for at the top level of ``module``."""
        mod = self.modules.get(module)
        binding = mod.bindings.get(name) if mod is not None else None
        if binding is None or mod is None:
            sub = f"{module}.{name}"
            return _ModuleSym(sub) if self._is_module(sub) else None
        key = (module, name)
        if key in self._memo:
            return self._memo[key]
        if key in self._resolving:  # an import cycle: nothing to find
            return None
        self._resolving.add(key)
        try:
            sym = self.binding_symbol(mod, binding, name, [])
        finally:
            self._resolving.discard(key)
        self._memo[key] = sym
        return sym

    def binding_symbol(
        self, mod: _Module, binding: _Binding, name: str, scopes: list[dict[str, _Sym | None]]
    ) -> _Sym | None:
        kind = binding[0]
        if kind == "module":
            target: str = binding[1]
            if target == "aiobucket":
                return _AiobucketSym(None)
            if target.startswith("aiobucket."):  # import aiobucket.http as h
                parent, _, sub = target.rpartition(".")
                return _AiobucketSym(sub, parent)
            return _ModuleSym(target) if self._is_module(target) else None
        if kind == "from":
            source = _absolute(mod, binding[1], binding[2][1])
            attr: str = binding[2][0]
            if source == "aiobucket" or source.startswith("aiobucket."):
                return _AiobucketSym(attr, source)
            return self.module_symbol(source, attr)
        if kind == "class":
            perms = self.class_permissions(mod, binding[1])
            return None if perms is None else _ProtocolSym(perms)
        value: ast.expr = binding[1]
        if isinstance(value, ast.Call) and self._is_aiobucket(mod, value.func, "Bucket", {}):
            arg = value.args[0] if value.args else _keyword(value, "name")
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                return _BucketSym(arg.value, name)
            return None
        sym = self.resolve(mod, value, scopes)
        if isinstance(sym, _BucketSym):
            return _AliasSym(sym.bucket, sym.variable, name, value.lineno)
        return sym

    def resolve(self, mod: _Module, node: ast.AST, scopes: list[dict[str, _Sym | None]]) -> _Sym | None:
        """What an expression stands for, where that is known statically."""
        if isinstance(node, ast.Name):
            for scope in reversed(scopes):
                if node.id in scope:
                    return scope[node.id]
            return self.module_symbol(mod.name, node.id)
        if isinstance(node, ast.Attribute):
            base = self.resolve(mod, node.value, scopes)
            if isinstance(base, _ModuleSym):
                return self.module_symbol(base.name, node.attr)
            if isinstance(base, _AiobucketSym):  # aiobucket.X, or aiobucket.http.X
                return _AiobucketSym(node.attr, base.module if base.attr is None else base.qualname)
            return None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "ref":
            base = self.resolve(mod, node.func.value, scopes)
            if isinstance(base, _BucketSym) and node.args:
                perms = self.permissions(mod, node.args[0], scopes)
                if perms is not None:
                    return _RefSym(base.bucket, perms, ast.unparse(node.args[0]))
        return None

    def permissions(
        self, mod: _Module, node: ast.expr, scopes: list[dict[str, _Sym | None]]
    ) -> frozenset[str] | None:
        sym = self.resolve(mod, node, scopes)
        if isinstance(sym, _AiobucketSym) and sym.attr in PROTOCOL_PERMISSIONS:
            return PROTOCOL_PERMISSIONS[sym.attr]
        if isinstance(sym, _ProtocolSym):
            return sym.perms
        return None

    def class_permissions(self, mod: _Module, cls: ast.ClassDef) -> frozenset[str] | None:
        """The permissions of a Protocol combining aiobucket's (None: not one)."""
        perms: set[str] = set()
        found = False
        for base in cls.bases:
            got = self.permissions(mod, base, [])
            if got is not None:
                perms |= got
                found = True
        return frozenset(perms) if found else None


def _collect_bindings(mod: _Module, body: list[ast.stmt], out: dict[str, _Binding]) -> None:
    """Names bound by a block's imports, assignments and classes (not inside functions)."""
    for stmt in body:
        if isinstance(stmt, ast.Import):
            for alias in stmt.names:
                if alias.asname:
                    out[alias.asname] = ("module", alias.name)
                else:
                    top = alias.name.partition(".")[0]
                    out[top] = ("module", top)
        elif isinstance(stmt, ast.ImportFrom):
            for alias in stmt.names:
                if alias.name != "*":
                    out[alias.asname or alias.name] = ("from", stmt.module or "", (alias.name, stmt.level))
        elif isinstance(stmt, ast.Assign | ast.AnnAssign):
            targets = _targets(stmt)
            if stmt.value is not None and len(targets) == 1 and isinstance(targets[0], ast.Name):
                out[targets[0].id] = ("value", stmt.value)
        elif isinstance(stmt, ast.ClassDef):
            out[stmt.name] = ("class", stmt)
        elif isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
            out.pop(stmt.name, None)
        elif isinstance(stmt, ast.If | ast.Try | ast.With | ast.AsyncWith):
            for block in ("body", "orelse", "finalbody"):
                _collect_bindings(mod, getattr(stmt, block, []), out)
            for handler in getattr(stmt, "handlers", []):
                _collect_bindings(mod, handler.body, out)


def _absolute(mod: _Module, module: str, level: int) -> str:
    if level == 0:
        return module
    package = mod.name.split(".") if mod.is_package else mod.name.split(".")[:-1]
    if level > 1:
        package = package[: len(package) - (level - 1)]
    return ".".join([p for p in package if p] + ([module] if module else []))


def _targets(stmt: ast.Assign | ast.AnnAssign) -> list[ast.expr]:
    return stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _python_files(root: Path) -> list[Path]:
    if root.is_file():
        return [root] if root.suffix == ".py" else []
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in _SKIP_DIRS)
        found += [Path(dirpath) / f for f in sorted(filenames) if f.endswith(".py")]
    return found


_SUGGEST = "hand the code a ref instead, e.g. {var}.ref({perm}), so its permissions are declared"


class _Visitor(ast.NodeVisitor):
    """Finds uses of buckets in one module, with function scopes for shadowing."""

    def __init__(self, analysis: _Analysis, mod: _Module) -> None:
        self.a = analysis
        self.mod = mod
        self.scopes: list[dict[str, _Sym | None]] = []

    # -- scopes ---------------------------------------------------------------

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        for default in [*node.args.defaults, *node.args.kw_defaults]:
            if default is not None:
                self.visit(default)
        if not isinstance(node, ast.Lambda):
            for deco in node.decorator_list:
                self.visit(deco)
        scope: dict[str, _Sym | None] = {}
        args = node.args
        for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
            if arg is not None:
                scope[arg.arg] = None
        body = [node.body] if isinstance(node, ast.Lambda) else node.body
        self.scopes.append(scope)
        try:
            self._bind_locals(body, scope)
            for stmt in body:
                self.visit(stmt)
        finally:
            self.scopes.pop()

    def _bind_locals(self, body: list[ast.stmt] | list[ast.expr], scope: dict[str, _Sym | None]) -> None:
        declared_global: set[str] = set()
        stack: list[ast.AST] = list(body)
        assigned: dict[str, list[ast.AST]] = {}
        while stack:
            node = stack.pop()
            if isinstance(node, ast.Global | ast.Nonlocal):
                declared_global.update(node.names)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                assigned.setdefault(node.id, []).append(node)
            elif isinstance(node, ast.Import | ast.ImportFrom):
                bindings: dict[str, _Binding] = {}
                _collect_bindings(self.mod, [node], bindings)
                for name, binding in bindings.items():
                    scope[name] = self.a.binding_symbol(self.mod, binding, name, self.scopes)
                continue
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                assigned.setdefault(node.name, []).append(node)
                continue
            if not isinstance(node, ast.Lambda):
                stack.extend(ast.iter_child_nodes(node))
        for name, stores in assigned.items():
            if name in declared_global or name in scope:
                continue
            scope[name] = None
            if len(stores) == 1 and isinstance(stores[0], ast.Name):
                parent = self.mod.parents.get(stores[0])
                if isinstance(parent, ast.Assign | ast.AnnAssign) and parent.value is not None:
                    sym = self.a.binding_symbol(self.mod, ("value", parent.value), name, self.scopes)
                    scope[name] = sym if isinstance(sym, _AliasSym | _RefSym) else None

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._function(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self._function(node)

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._function(node)

    # -- uses -----------------------------------------------------------------

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            self._use(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if isinstance(node.ctx, ast.Load):
            self._use(node)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        if isinstance(node.func, ast.Attribute) and node.func.attr == "ref":
            self._ref_call(node)
        self._ref_to_helper(node)
        self.generic_visit(node)

    def _helper(
        self, call: ast.Call, arg: ast.expr, keyword: str | None
    ) -> tuple[str, frozenset[str]] | None:
        """(helper name, permissions) when ``arg`` is the bucket argument of an aiobucket helper."""
        sym = self.a.resolve(self.mod, call.func, self.scopes)
        if not isinstance(sym, _AiobucketSym) or sym.qualname not in HELPERS:
            return None
        position, param, perms = helper_permissions(sym.qualname)
        passed = keyword == param if keyword is not None else call.args[position : position + 1] == [arg]
        return (sym.qualname, perms) if passed else None

    def _ref_to_helper(self, call: ast.Call) -> None:
        """A ref handed to an aiobucket helper must permit what the helper calls on it."""
        for arg, keyword in [*((a, None) for a in call.args), *((k.value, k.arg) for k in call.keywords)]:
            sym = self.a.resolve(self.mod, arg, self.scopes)
            if not isinstance(sym, _RefSym):
                continue
            helper = self._helper(call, arg, keyword)
            if helper is not None and not helper[1] <= sym.perms:
                missing = ", ".join(sorted(helper[1] - sym.perms))
                self._warn(
                    arg,
                    f"{helper[0]}() needs {missing} on its bucket, which ref({sym.label}) of bucket "
                    f"{sym.bucket!r} does not permit: it raises PermissionDenied at run time",
                )

    def _warn(self, node: ast.AST, message: str) -> None:
        self.a.warn(self.mod, node, message)

    def _grant(self, bucket: str, *perms: str) -> None:
        self.a.manifest.grant(self.mod.service, bucket, set(perms))

    def _use(self, node: ast.Name | ast.Attribute) -> None:
        sym = self.a.resolve(self.mod, node, self.scopes)
        if isinstance(sym, _BucketSym):
            self._bucket_use(node, sym)
        elif isinstance(sym, _AliasSym):
            method = self._called_method(node)
            if method in METHOD_PERMISSION or method == "copy":
                perm = METHOD_PERMISSION.get(method, "Downloader")
                self._warn(
                    node,
                    f"{sym.name}.{method}() on a variable holding bucket {sym.bucket!r} "
                    f"(assigned at line {sym.line}) is not in the manifest; "
                    + _SUGGEST.format(var=sym.variable, perm=perm),
                )
        elif isinstance(sym, _RefSym):
            method = self._called_method(node)
            known = method is not None and (method in METHOD_PERMISSION or method == "copy")
            if known and METHOD_PERMISSION.get(method or "") not in sym.perms:
                self._warn(
                    node,
                    f"{method}() is not permitted by ref({sym.label}) of bucket {sym.bucket!r} "
                    "and raises PermissionDenied at run time",
                )

    def _called_method(self, node: ast.expr) -> str | None:
        parent = self.mod.parents.get(node)
        if isinstance(parent, ast.Attribute) and parent.value is node:
            call = self.mod.parents.get(parent)
            if isinstance(call, ast.Call) and call.func is parent:
                return parent.attr
        return None

    def _bucket_use(self, node: ast.Name | ast.Attribute, sym: _BucketSym) -> None:
        var, bucket = sym.variable, sym.bucket
        parent = self.mod.parents.get(node)
        if isinstance(parent, ast.Attribute) and parent.value is node:
            method = parent.attr
            call = self.mod.parents.get(parent)
            called = isinstance(call, ast.Call) and call.func is parent
            if method in _HARMLESS_ATTRS or (method == "ref" and called):
                return
            if not called:
                what = "bound method" if method in METHOD_PERMISSION or method == "copy" else "attribute"
                self._warn(
                    node,
                    f"{var}.{method} ({what} of bucket {bucket!r}) is used as a value and cannot be "
                    "followed; " + _SUGGEST.format(var=var, perm=METHOD_PERMISSION.get(method, "Downloader")),
                )
            elif method == "copy":
                assert isinstance(call, ast.Call)
                self._copy(call, sym)
            elif method in METHOD_PERMISSION:
                self._grant(bucket, METHOD_PERMISSION[method])
            else:
                self._warn(node, f"{var}.{method}() is not a Bucket method")
            return
        keyword = None
        if isinstance(parent, ast.keyword):
            call = self.mod.parents.get(parent)
            if parent.arg == "dst_bucket" and isinstance(call, ast.Call) and self._is_bucket_copy(call):
                return  # handled with the copy
            keyword, parent = parent.arg, call
        if isinstance(parent, ast.Call) and parent.func is not node:
            helper = self._helper(parent, node, keyword)
            if helper is not None:  # aiobucket's own helper: it needs what its parameter says
                self._grant(bucket, *helper[1])
                return
            func = ast.unparse(parent.func)
            if func == "getattr":
                self._warn(
                    node,
                    f"getattr() on bucket {bucket!r} ({var}) cannot be followed; "
                    + _SUGGEST.format(var=var, perm="<Permission>"),
                )
            else:
                self._warn(
                    node,
                    f"bucket {bucket!r} ({var}) is passed to {func}(), so its operations there cannot be "
                    "attributed; " + _SUGGEST.format(var=var, perm="<Permission>"),
                )
            return
        if isinstance(parent, ast.Assign | ast.AnnAssign | ast.NamedExpr | ast.AugAssign):
            targets = [parent.target] if not isinstance(parent, ast.Assign) else parent.targets
            where = ", ".join(ast.unparse(t) for t in targets)
            self._warn(
                node,
                f"bucket {bucket!r} ({var}) is stored in {where}, so uses through it cannot be "
                "attributed; " + _SUGGEST.format(var=var, perm="<Permission>"),
            )
            return
        self._warn(
            node,
            f"bucket {bucket!r} ({var}) is used as a value here and cannot be followed; "
            + _SUGGEST.format(var=var, perm="<Permission>"),
        )

    def _is_bucket_copy(self, call: ast.Call) -> bool:
        func = call.func
        return (
            isinstance(func, ast.Attribute)
            and func.attr == "copy"
            and isinstance(self.a.resolve(self.mod, func.value, self.scopes), _BucketSym)
        )

    def _copy(self, call: ast.Call, src: _BucketSym) -> None:
        self._grant(src.bucket, "Downloader")
        dst_node = _keyword(call, "dst_bucket")
        if dst_node is None or (isinstance(dst_node, ast.Constant) and dst_node.value is None):
            self._grant(src.bucket, "Uploader")
            return
        dst = self.a.resolve(self.mod, dst_node, self.scopes)
        if isinstance(dst, _BucketSym):
            self._grant(dst.bucket, "Uploader")
        elif isinstance(dst, _RefSym):
            if "Uploader" not in dst.perms:
                self._warn(
                    dst_node,
                    f"copy() into ref({dst.label}) of bucket {dst.bucket!r} needs Uploader "
                    "and raises PermissionDenied at run time",
                )
        else:
            self._warn(
                dst_node,
                f"the destination of {src.variable}.copy() cannot be resolved statically, so its Uploader "
                "permission is not in the manifest; pass a declared bucket or a ref(Uploader)",
            )

    def _ref_call(self, call: ast.Call) -> None:
        assert isinstance(call.func, ast.Attribute)
        base = self.a.resolve(self.mod, call.func.value, self.scopes)
        if not isinstance(base, _BucketSym):
            return
        perm_node = call.args[0] if call.args else _keyword(call, "perm")
        perms = None if perm_node is None else self.a.permissions(self.mod, perm_node, self.scopes)
        if perms is None:
            what = ast.unparse(perm_node) if perm_node is not None else "nothing"
            self._warn(
                call,
                f"{base.variable}.ref({what}): cannot resolve the permission Protocol statically; "
                "pass Downloader, Uploader, ... or a Protocol class inheriting from them",
            )
            return
        self._grant(base.bucket, *perms)
