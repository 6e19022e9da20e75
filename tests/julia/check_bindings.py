#!/usr/bin/env python3
"""Static conformance check of the Julia bindings against include/adjunct.h.

1. Parses every .jl file of bindings/julia/Adjunct and examples/julia with
   the tree-sitter Julia grammar; any ERROR or MISSING node fails.
2. For every `ccall((:symbol, lib), Ret, (Types...), args...)`: the symbol
   is declared in the header, the number of argument types and of passed
   arguments equals the C parameter count, and each Julia type matches the
   C type (table below).
3. Every function declared in the header has a ccall in src/Adjunct.jl.
4. The Julia mirrors of the C structs have the same field types, in order
   (a C array field `T name[N]` as `NTuple{N,JT}`).

Usage: python3 tests/julia/check_bindings.py REPO_ROOT  (exit 0 = conforms)
Needs: pip install tree-sitter tree-sitter-julia
"""
import pathlib
import re
import sys

from tree_sitter import Language, Parser
import tree_sitter_julia

# Julia spellings accepted for each C type (after normalising whitespace).
SCALARS = {
    "double": {"Cdouble", "Float64"},
    "float": {"Cfloat", "Float32"},
    "size_t": {"Csize_t", "UInt", "UInt64"},
    "int32_t": {"Int32", "Cint"},
    "uint32_t": {"UInt32", "Cuint"},
    "int": {"Cint", "Int32"},
    "uint8_t": {"UInt8", "Cuchar"},
    "int64_t": {"Int64", "Clonglong"},
    "enum adj_status": {"Cint", "Int32"},
    "enum adj_solve_reason": {"Cint", "Int32"},
    "void": {"Cvoid", "Nothing"},
    "const char *": {"Cstring", "Ptr{UInt8}", "Ptr{Cchar}"},
    "adj_apply_fn": {"Ptr{Cvoid}"},
    "adj_jacobian_fn": {"Ptr{Cvoid}"},
    "adj_allreduce_fn": {"Ptr{Cvoid}"},
    "adj_direction_fn": {"Ptr{Cvoid}"},
    "void *": {"Ptr{Cvoid}"},
    "const void *": {"Ptr{Cvoid}"},
    "adj_exchange_fn": {"Ptr{Cvoid}"},
    "uint64_t": {"UInt64"},
}
# C struct name -> Julia mirror type name.
STRUCTS = {
    "adj_cg_options": "CgOptions",
    "adj_solve_report": "SolveReport",
    "adj_ot_options": "OtOptions",
    "adj_ot_result": "OtResult",
    "adj_implicit_options": "ImplicitOptions",
    "adj_root_problem": "CRootProblem",
    "adj_cdm_options": "CdmOptions",
    "adj_cdm_report": "CdmReport",
    "adj_grid_options": "GridOptions",
    "adj_comm": "CComm",
    "adj_comm_stats": "CommStats",
    "adj_halo_message": "HaloMessage",
}
HANDLES = {"adj_operator", "adj_precond", "adj_model", "adj_pressure_solver", "adj_distributed_pressure_solver"}


def julia_types_for(c_type):
    array = re.fullmatch(r"(.+)\[(\d+)\]", c_type)
    if array:
        return {f"NTuple{{{array.group(2)},{j}}}" for j in julia_types_for(array.group(1))}
    """The set of Julia types that match a C parameter or return type."""
    t = " ".join(c_type.replace("*", " * ").split()).replace(" *", " *")
    t = re.sub(r"\s+\*", " *", t)
    if t in SCALARS:
        return SCALARS[t]
    bare = t.replace("const ", "")
    m = re.fullmatch(r"struct (\w+)", bare)
    if m and m.group(1) in STRUCTS:
        return {STRUCTS[m.group(1)]}
    m = re.fullmatch(r"struct (\w+) \* \*", bare)
    if m and m.group(1) in HANDLES:
        return {"Ref{Ptr{Cvoid}}", "Ptr{Ptr{Cvoid}}"}
    m = re.fullmatch(r"struct (\w+) \*", bare)
    if m and m.group(1) in HANDLES:
        return {"Ptr{Cvoid}"}
    if m and m.group(1) in STRUCTS:
        j = STRUCTS[m.group(1)]
        return {f"Ref{{{j}}}", f"Ptr{{{j}}}"}
    m = re.fullmatch(r"(\w+) \*", bare)
    if m and m.group(1) in SCALARS:
        return {f"Ptr{{{j}}}" for j in SCALARS[m.group(1)]} | {f"Ref{{{j}}}" for j in SCALARS[m.group(1)]}
    raise ValueError(f"no Julia mapping for C type {c_type!r}")


def parse_header(path):
    text = path.read_text()
    body = re.sub(r"//[^\n]*", "", text)
    body = "\n".join(l for l in body.splitlines() if not l.lstrip().startswith("#"))
    body = " ".join(body.split())
    functions = {}
    for m in re.finditer(r"([A-Za-z_][\w\s\*]*?)\b(adj_\w+)\(([^()]*)\);", body):
        ret, name, params = m.group(1).strip(), m.group(2), m.group(3).strip()
        if ret.startswith("typedef"):
            continue
        args = []
        if params and params != "void":
            for p in params.split(","):
                p = p.strip()
                pm = re.fullmatch(r"(.*?[\s\*])(\w+)", p)
                args.append(pm.group(1).strip())
        functions[name] = (ret, args)
    structs = {}
    for m in re.finditer(r"typedef struct (adj_\w+) \{(.*?)\} \1;", body):
        fields = [f.strip() for f in m.group(2).split(";") if f.strip()]
        parsed = [re.fullmatch(r"(.*?[\s\*])(\w+)(\[\d+\])?", f) for f in fields]
        structs[m.group(1)] = [p.group(1).strip() + (p.group(3) or "") for p in parsed]
    return functions, structs


def deprecated_functions(path):
    """Functions whose header comment starts with "Deprecated" (kept for old
    clients; the package uses their replacements)."""
    names, comment = set(), []
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("//"):
            comment.append(stripped[2:].strip())
            continue
        m = re.search(r"\b(adj_\w+)\(", stripped)
        if m and comment and comment[0].startswith("Deprecated") and not stripped.startswith("typedef"):
            names.add(m.group(1))
        if stripped and not stripped.endswith(","):
            comment = []
    return names


def text(src, node):
    return " ".join(src[node.start_byte:node.end_byte].decode().split())


def named_args(node):
    return [c for c in node.named_children if c.type not in ("comment", "line_comment", "block_comment")]


def check_file(parser, path, functions, problems, called):
    src = path.read_bytes()
    tree = parser.parse(src)
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        if node.type == "ERROR" or node.is_missing:
            line = node.start_point[0] + 1
            problems.append(f"{path}:{line}: syntax error near {text(src, node)[:60]!r}")
        if node.type == "call_expression" and node.named_children and text(src, node.named_children[0]) == "ccall":
            check_ccall(src, path, node, functions, problems, called)
        if node.type == "macrocall_expression" and "@ccall" in text(src, node)[:7]:
            problems.append(f"{path}:{node.start_point[0] + 1}: @ccall is not checked by this tool; use ccall")
        stack.extend(node.children)


def check_ccall(src, path, node, functions, problems, called):
    line = node.start_point[0] + 1
    where = f"{path}:{line}"
    arglist = [c for c in node.named_children[1:] if c.type == "argument_list"]
    if not arglist:
        problems.append(f"{where}: ccall without an argument list")
        return
    args = named_args(arglist[0])
    if len(args) < 3:
        problems.append(f"{where}: ccall needs (symbol, library), return type and argument types")
        return
    target, ret, types = args[0], args[1], args[2]
    sym = None
    if target.type == "tuple_expression":
        first = named_args(target)
        if first and first[0].type == "quote_expression":
            sym = text(src, first[0]).lstrip(":")
    if sym is None:
        problems.append(f"{where}: ccall target must be (:symbol, library)")
        return
    if sym not in functions:
        problems.append(f"{where}: {sym} is not declared in include/adjunct.h")
        return
    called.add((path.name, sym))
    c_ret, c_args = functions[sym]
    if types.type != "tuple_expression":
        problems.append(f"{where}: {sym}: argument types must be a tuple literal, found {text(src, types)!r}")
        return
    jl_types = [text(src, t) for t in named_args(types)]
    passed = args[3:]
    if len(jl_types) != len(c_args):
        problems.append(f"{where}: {sym} takes {len(c_args)} arguments in C, the ccall declares {len(jl_types)}")
    if len(passed) != len(jl_types):
        problems.append(f"{where}: {sym}: {len(jl_types)} argument types but {len(passed)} arguments passed")
    if text(src, ret) not in julia_types_for(c_ret):
        problems.append(f"{where}: {sym} returns {c_ret!r} in C, ccall says {text(src, ret)!r}")
    for k, (jt, ct) in enumerate(zip(jl_types, c_args)):
        allowed = julia_types_for(ct)
        if jt not in allowed:
            problems.append(f"{where}: {sym} argument {k + 1} is {ct!r} in C, ccall says {jt!r} (expected one of {sorted(allowed)})")


def check_struct_mirrors(parser, path, structs, problems):
    src = path.read_bytes()
    tree = parser.parse(src)
    mirrors = {}
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        if node.type == "struct_definition":
            body = text(src, node)
            m = re.match(r"(?:mutable )?struct (\w+)", body)
            if m:
                fields = re.findall(r"(\w+)::((?:\w|\{[^}]*\})+)", body)
                mirrors[m.group(1)] = [t for _, t in fields]
        stack.extend(node.children)
    for c_name, j_name in STRUCTS.items():
        if c_name not in structs:
            problems.append(f"{c_name} is not a struct in include/adjunct.h")
            continue
        if j_name not in mirrors:
            problems.append(f"{path}: no Julia mirror struct {j_name} of {c_name}")
            continue
        c_fields, j_fields = structs[c_name], mirrors[j_name]
        if len(c_fields) != len(j_fields):
            problems.append(f"{path}: {j_name} has {len(j_fields)} fields, {c_name} has {len(c_fields)}")
            continue
        for k, (ct, jt) in enumerate(zip(c_fields, j_fields)):
            if jt not in julia_types_for(ct):
                problems.append(f"{path}: {j_name} field {k + 1} is {jt}, C has {ct}")


def main():
    root = pathlib.Path(sys.argv[1])
    functions, structs = parse_header(root / "include" / "adjunct.h")
    if len(functions) < 10:
        print(f"only {len(functions)} functions parsed from the header: parser broken")
        return 1
    parser = Parser(Language(tree_sitter_julia.language()))
    files = sorted((root / "bindings" / "julia").rglob("*.jl")) + sorted((root / "examples" / "julia").rglob("*.jl"))
    problems, called = [], set()
    for path in files:
        check_file(parser, path, functions, problems, called)
    module = root / "bindings" / "julia" / "Adjunct" / "src" / "Adjunct.jl"
    wrapped = {sym for (name, sym) in called if name == module.name}
    for name in sorted(set(functions) - wrapped - deprecated_functions(root / "include" / "adjunct.h")):
        problems.append(f"{name} (include/adjunct.h) has no ccall in src/Adjunct.jl")
    check_struct_mirrors(parser, module, structs, problems)
    for p in problems:
        print(p)
    print(f"checked {len(files)} Julia files, {len(called)} ccall sites, {len(functions)} C functions: "
          f"{'OK' if not problems else f'{len(problems)} problems'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
