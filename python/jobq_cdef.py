"""Turns include/jobq.h into the declarations cffi's ``ffibuilder.cdef()`` reads.

The bindings are generated from the header at build time, so they cannot
drift from it: a function added to the C API is declared in
``jobq._jobq_cffi.lib`` by the next ``pip install``. The steps (documented
in docs/python.md) are a small preprocessor for this one header:

1. remove comments;
2. drop every ``#ifdef __cplusplus`` ... ``#endif`` block (``extern "C" {``);
3. keep ``#define JOBQ_NAME <integer>`` as ``#define JOBQ_NAME ...`` (the C
   compiler supplies the value, so it cannot be copied wrong); drop every
   other preprocessor line (include guards, ``#include``, string macros
   such as JOBQ_VERSION_STRING, the function-like ``*_opts_init`` macros:
   the functions of the same names stay declared);
4. keep all the rest (typedefs, structs, enums, prototypes) as written.

Anything cffi cannot parse then fails the build loudly, naming the line.
"""

from __future__ import annotations

import re

_INT_DEFINE = re.compile(r"^#\s*define\s+(JOBQ_\w+)\s+(-?\d+|0[xX][0-9a-fA-F]+)[uUlL]*\s*$")
_PROTOTYPE = re.compile(r"\b(jobq_\w+)\s*\(")


def strip_comments(text: str) -> str:
    """Removes /* */ and // comments (the header has no comment markers inside strings)."""
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def cdef_from_header(header_text: str) -> str:
    """The cdef text for ``header_text`` (the contents of jobq.h)."""
    out: list[str] = []
    # A stack of "this #if block is skipped" flags.
    skipping: list[bool] = []
    lines = strip_comments(header_text).splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        # Join backslash continuations of preprocessor lines.
        while line.rstrip().endswith("\\") and i + 1 < len(lines):
            i += 1
            line = line.rstrip()[:-1] + " " + lines[i]
        i += 1
        stripped = line.strip()
        if stripped.startswith("#"):
            directive = stripped[1:].strip()
            word = directive.split(None, 1)[0] if directive else ""
            if word in ("if", "ifdef", "ifndef"):
                skipped = word == "ifdef" and directive.split()[1:2] == ["__cplusplus"]
                skipping.append(skipped)
            elif word == "else":
                if skipping:
                    skipping[-1] = not skipping[-1]
            elif word == "endif":
                if skipping:
                    skipping.pop()
            elif word == "define" and not any(skipping):
                m = _INT_DEFINE.match(stripped)
                if m:
                    out.append(f"#define {m.group(1)} ...")
            continue
        if any(skipping):
            continue
        if stripped:
            out.append(line.rstrip())
    return "\n".join(out) + "\n"


def header_functions(header_text: str) -> list[str]:
    """Names of the functions the header declares (not macros), in order.

    Independent of cdef_from_header on purpose: the tests compare the two.
    """
    code = "\n".join(
        line for line in strip_comments(header_text).splitlines() if not line.lstrip().startswith("#")
    )
    names: list[str] = []
    for statement in code.split(";"):
        flat = " ".join(statement.replace("{", " ; ").replace("}", " ; ").split(" ; ")[-1].split())
        m = re.match(r"^(?:const\s+)?(?:enum\s+|struct\s+)?\w+[\s\*]+(jobq_\w+)\s*\(", flat)
        if m and not flat.startswith("typedef") and m.group(1) not in names:
            names.append(m.group(1))
    return names
