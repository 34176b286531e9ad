"""An import-linter contract the built-in ones cannot say: a program may import, directly or through
any chain, only the first-party modules on its list (pyproject.toml's [tool.importlinter]).

A `forbidden` contract names what is out, and a module added later is in until someone lists it;
here a new dependency of the node agent or the client breaks the build until it is listed.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from grimp import ImportGraph
from importlinter import Contract, ContractCheck, fields, output
from importlinter.application import contract_utils
from importlinter.application.contract_utils import AlertLevel


class AllowListContract(Contract):
    """Options: `source_modules` (packages), `allowed_modules` (module names or fnmatch patterns,
    e.g. `shared.models.*`), `ignore_imports` (import expressions, each with its reason beside it)."""

    type_name = "allowlist"

    source_modules = fields.ListField(subfield=fields.StringField())
    allowed_modules = fields.ListField(subfield=fields.StringField())
    ignore_imports = fields.SetField(subfield=fields.ImportExpressionField(), required=False)

    def check(self, graph: ImportGraph, verbose: bool) -> ContractCheck:
        removal = contract_utils.remove_ignored_imports_and_report(
            graph=graph, ignore_imports=self.ignore_imports,  # type: ignore[arg-type]
            unmatched_alerting=AlertLevel.ERROR)
        allowed: list[str] = list(self.allowed_modules)  # type: ignore[call-overload]
        sources: list[str] = list(self.source_modules)  # type: ignore[call-overload]
        broken: list[dict[str, object]] = []
        inside = {m for source in sources for m in (source, *graph.find_descendants(source))}
        for source in sources:
            for module in sorted(graph.find_upstream_modules(source, as_package=True) - inside):
                if any(fnmatchcase(module, p) for p in allowed):
                    continue
                chain = min((c for m in sorted(inside) if m.startswith(source) and (c := graph.find_shortest_chain(m, module))),
                            key=len, default=(source, module))
                broken.append({"source": source, "module": module, "chain": list(chain)})
        return ContractCheck(kept=not broken, metadata={"broken": broken}, warnings=list(removal.warnings))

    def render_broken_contract(self, check: ContractCheck) -> None:
        for item in check.metadata["broken"]:
            output.print_error(f"{item['source']} reaches {item['module']}, which is not allowed:", bold=True)
            output.print_error("    " + " -> ".join(item["chain"]), bold=False)
            output.new_line()
