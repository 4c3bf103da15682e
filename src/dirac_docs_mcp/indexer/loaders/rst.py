"""reStructuredText via docutils (Sphinx roles and directives reduced to their text).

Why one module of ~480 lines: the docutils set-up (directives and roles registered once),
the doctree clean-up and the converter that walks it are one pipeline over docutils' node
types; split, each part would import the others' private node handling."""

from __future__ import annotations

import io
import logging
import re
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ...schemas import BlockKind, Document, Section
from .common import (
    _collapse,
    _read_text,
    _Sections,
)
from .text import _parse_plain

log = logging.getLogger(__name__)


_rst_ready = False

# Sphinx (and common extension) directives whose content is ordinary rst body.
_CONTENT_DIRECTIVES = (
    "only ifconfig tabs tab group-tab tab-set grid grid-item glossary hlist centered "
    "cssclass container-fluid jinja"
).split()
# Directives whose arguments are meaningful text (signatures, option names, card titles).
_ARG_DIRECTIVES = (
    "autoclass automodule autofunction automethod autoattribute autodata autoexception "
    "autoproperty autosummary autoprogram argparse click "
    "py:class py:function py:method py:module py:attribute py:data py:exception py:property "
    "py:staticmethod py:classmethod py:decorator py:currentmodule currentmodule "
    "class function method module attribute data exception staticmethod classmethod decorator "
    "c:function c:macro c:type c:member cpp:class cpp:function js:function "
    "describe object envvar program option confval cmdoption "
    "tab-item grid-item-card card dropdown button-link button-ref article-info "
    "versionremoved"
).split()
# Directives whose content is code (literal text).
_CODE_DIRECTIVES = (
    "code-block sourcecode code literalinclude productionlist graphviz graph digraph mermaid "
    "plantuml uml ipython jupyter-execute prompt code-cell doctest testcode testoutput"
).split()
# Directives that only carry navigation / layout / metadata.
_DROP_DIRECTIVES = (
    "toctree highlight contents sectnum index tabularcolumns todolist sectionauthor "
    "moduleauthor codeauthor rst-class spelling:word-list spelling raw include "
    "automodsumm autoapi-nested-parse inheritance-diagram"
).split()
_ADMONITION_LABELS = {
    "seealso": "See also",
    "todo": "Todo",
    "versionadded": "New in version",
    "versionchanged": "Changed in version",
    "deprecated": "Deprecated since version",
}
_SPHINX_ROLES = (
    "ref doc mod class func meth attr data exc obj const term option envvar program file "
    "command kbd guilabel menuselection samp abbr download numref keyword token any dfn "
    "mimetype newsfeed regexp makevar manpage eq confval subtitle issue pr user commit "
    "py:mod py:class py:func py:meth py:attr py:data py:exc py:obj py:const py:property "
    "c:func c:macro c:type c:member c:data cpp:class cpp:func js:func "
    "std:ref std:doc std:term std:option std:envvar rst:dir rst:role "
    "external external+ref octicon fa bdg bdg-primary bdg-secondary bdg-success bdg-info "
    "bdg-warning bdg-danger bdg-light bdg-dark"
).split()

_ROLE_TARGET = re.compile(r"^(.*?)\s*<([^<>]*)>\s*$", re.DOTALL)
_RAW_ROLE = re.compile(r":(?:[A-Za-z][\w.+-]*:)+`([^`]*)`")
_DIRECTIVE_HEAD = re.compile(r"^\.\.\s+([\w:.+-]+)\s*::\s*(.*)$")
_OPTION_LINE = re.compile(r"^:[\w-]+:")


def _role_display(text: str) -> str:
    """What Sphinx shows for a cross-reference: the title of ``title <target>``, else the
    target (``~``/``!`` prefixes removed)."""
    m = _ROLE_TARGET.match(text)
    if m:
        text = m.group(1).strip() or m.group(2).strip()
    return text.lstrip("~!")


def _setup_rst() -> None:
    """Register fallback handlers for Sphinx directives and roles (once per process)."""
    global _rst_ready
    if _rst_ready:
        return
    from docutils import nodes
    from docutils.parsers.rst import Directive, directives, roles

    class _AnyOptions(dict):
        """Accepts every option (the dict must be non-empty for docutils to parse options)."""

        def __missing__(self, key: str) -> Callable[[str | None], str]:
            return directives.unchanged

    any_options = _AnyOptions({"name": directives.unchanged, "class": directives.unchanged})

    class _Base(Directive):
        required_arguments = 0
        optional_arguments = 1
        final_argument_whitespace = True
        has_content = True
        option_spec = any_options

        def _content_nodes(self) -> list[Any]:
            if not self.content:
                return []
            box = nodes.container()
            self.state.nested_parse(self.content, self.content_offset, box)
            return [box]

    class _Drop(_Base):
        def run(self) -> list[Any]:
            return []

    class _Content(_Base):
        def run(self) -> list[Any]:
            return self._content_nodes()

    class _ArgsContent(_Base):
        def run(self) -> list[Any]:
            out: list[Any] = []
            arg = _collapse(" ".join(self.arguments))
            if arg:
                out.append(nodes.paragraph(arg, arg))
            return out + self._content_nodes()

    class _Code(_Base):
        def run(self) -> list[Any]:
            if not self.content:
                return []
            code = "\n".join(self.content)
            return [nodes.literal_block(code, code)]

    class _Labelled(_Base):
        def run(self) -> list[Any]:
            label = _ADMONITION_LABELS.get(self.name, self.name.capitalize())
            arg = _collapse(" ".join(self.arguments))
            if self.name.startswith(("version", "deprecated")) and arg:
                version, _, rest = arg.partition(" ")
                label = f"{label} {version}"
                arg = rest
            box = nodes.admonition("", nodes.title(label, label))
            if arg:
                box += nodes.paragraph(arg, arg)
            box += self._content_nodes()
            return [box]

    def _generic_role(
        name: str,
        rawtext: str,
        text: str,
        lineno: int,
        inliner: Any,
        options: Any = None,
        content: Any = None,
    ) -> tuple[list[Any], list[Any]]:
        shown = _role_display(text.replace("\x00", ""))
        return [nodes.literal(rawtext, shown)], []

    for name in _CONTENT_DIRECTIVES:
        directives.register_directive(name, _Content)
    for name in _ARG_DIRECTIVES:
        directives.register_directive(name, _ArgsContent)
    for name in _CODE_DIRECTIVES:
        directives.register_directive(name, _Code)
    for name in _DROP_DIRECTIVES:
        directives.register_directive(name, _Drop)
    for name in _ADMONITION_LABELS:
        directives.register_directive(name, _Labelled)
    for name in _SPHINX_ROLES:
        roles.register_local_role(name, _generic_role)
    _rst_ready = True


def _rst_settings() -> dict[str, Any]:
    return {
        "report_level": 5,
        "halt_level": 5,
        "warning_stream": io.StringIO(),
        "file_insertion_enabled": False,
        "raw_enabled": False,
        "input_encoding": "unicode",
        "doctitle_xform": False,
        "sectsubtitle_xform": False,
        "docinfo_xform": False,
        "syntax_highlight": "none",
        "smart_quotes": False,
        "pep_references": False,
        "rfc_references": False,
        "traceback": True,  # raise instead of sys.exit() on internal errors
        "tab_width": 8,
    }


def _unknown_directive_nodes(message: Any) -> list[Any]:
    """The content of an unregistered directive, as paragraphs (from the message's copy)."""
    from docutils import nodes

    raw = "".join(child.astext() for child in message.findall(nodes.literal_block))
    lines = raw.split("\n")
    if not lines:
        return []
    m = _DIRECTIVE_HEAD.match(lines[0].strip())
    out: list[Any] = []
    if m and m.group(2).strip():
        out.append(nodes.paragraph(m.group(2), _collapse(m.group(2))))
    body = textwrap.dedent("\n".join(lines[1:]))
    body_lines = body.split("\n")
    while body_lines and _OPTION_LINE.match(body_lines[0].strip()):
        body_lines.pop(0)
    for para in re.split(r"\n\s*\n", "\n".join(body_lines)):
        if para.strip():
            out.append(nodes.paragraph(para, _collapse(para)))
    return out


def _replace(node: Any, new: list[Any]) -> None:
    """Swap ``node`` for ``new`` in its parent (``replace_self`` refuses nodes with ids)."""
    parent = node.parent
    index = parent.index(node)
    parent.remove(node)
    for offset, item in enumerate(new):
        parent.insert(index + offset, item)


def _clean_doctree(doctree: Any) -> None:
    """Drop system messages (keeping the text of unknown directives) and turn problematic
    nodes back into their source text (unknown roles shown as their display text)."""
    from docutils import nodes

    for msg in list(doctree.findall(nodes.system_message)):
        if msg.parent is None:
            continue
        first = msg.children[0].astext() if msg.children else ""
        if first.startswith("Unknown directive type"):
            replacement = _unknown_directive_nodes(msg)
            if replacement:
                _replace(msg, replacement)
                continue
        msg.parent.remove(msg)
    for prob in list(doctree.findall(nodes.problematic)):
        if prob.parent is None:
            continue
        raw = _RAW_ROLE.sub(lambda m: _role_display(m.group(1)), prob.astext())
        _replace(prob, [nodes.Text(raw)])
    for sect in list(doctree.findall(nodes.section)):
        if "system-messages" in sect.get("classes", []) and sect.parent is not None:
            sect.parent.remove(sect)


class _RstConverter:
    """Walks a docutils doctree and emits sections of blocks."""

    def __init__(self) -> None:
        from docutils import nodes

        self.n = nodes
        self.out = _Sections()
        self.lines: list[str] = []  # pending lines of a grouped text block (lists etc.)
        self.prefix: str | None = None  # label for the next text ("Note: ", "term: ")
        self.bullet = False  # the next grouped line starts a list item
        self.list_level = 0  # open lists around the current node

    # -- emission
    def _flush(self) -> None:
        if self.lines:
            self.out.add("text", "\n".join(self.lines))
            self.lines = []

    def _text(self, text: str, indent: int | None) -> None:
        text = _collapse(text)
        if not text:
            return
        if self.prefix:
            text = self.prefix + text
            self.prefix = None
        if indent is None:
            self._flush()
            self.out.add("text", text)
            return
        lead = "  " * indent
        if self.bullet:
            self.bullet = False
            self.lines.append(f"{lead}- {text}")
        elif self.list_level:  # a further paragraph of a list item
            self.lines.append(f"{lead}  {text}")
        else:
            self.lines.append(f"{lead}{text}")

    def _special(self, kind: BlockKind, text: str) -> None:
        self._flush()
        if self.prefix:  # a label waiting for text: keep it before the code/table
            self.out.add("text", self.prefix.rstrip(": ").rstrip())
            self.prefix = None
        self.bullet = False
        self.out.add(kind, text)

    def _labelled(self, label: str, children: list[Any], indent: int | None) -> None:
        """Render children with ``label: `` in front of their first text."""
        if not label:
            for child in children:
                self._body(child, indent)
            return
        self.prefix = (self.prefix or "") + label + ": "
        for child in children:
            self._body(child, indent)
        if self.prefix is not None:  # nothing consumed it
            leftover = self.prefix.rstrip().rstrip(":")
            self.prefix = None
            self._text(leftover, indent)

    # -- structure
    def convert(self, doctree: Any) -> tuple[str, list[Section]]:
        n = self.n
        tops = [c for c in doctree.children if isinstance(c, n.section)]
        title = self._title_of(tops[0]) if tops else ""
        self._walk(doctree, [title] if title else [], top=True, doc_title=title)
        self._flush()
        return title, self.out.sections

    def _title_of(self, section: Any) -> str:
        if section.children and isinstance(section.children[0], self.n.title):
            return _collapse(section.children[0].astext())
        return ""

    def _walk(self, node: Any, crumb: list[str], top: bool = False, doc_title: str = "") -> None:
        n = self.n
        first_top = True
        for child in node.children:
            if isinstance(child, n.section):
                self._flush()
                title = self._title_of(child)
                if top and first_top:
                    sub = [title] if title else []
                    first_top = False
                elif top:
                    sub = [doc_title, title] if doc_title and title != doc_title else [title]
                else:
                    sub = crumb + [title] if title else list(crumb)
                self._walk(child, sub)
                self._flush()
            elif isinstance(child, n.title) and not top:
                continue
            else:
                if [c for c in crumb if c] != self.out.crumb:
                    self._flush()
                    self.out.set_crumb(crumb)
                self._body(child, None)
                if not self.lines:
                    self.bullet = False

    def _body(self, node: Any, indent: int | None) -> None:  # noqa: C901 (a type switch)
        n = self.n
        if isinstance(node, n.Text):
            self._text(str(node), indent)
            return
        if isinstance(
            node,
            (
                n.Invisible,
                n.system_message,
                n.image,
                n.raw,
                n.transition,
                n.label,
                n.colspec,
                n.section,
            ),
        ):
            return
        if isinstance(node, (n.literal_block, n.doctest_block, n.math_block)):
            self._special("code", node.astext())
            return
        if isinstance(node, n.table):
            self._special("table", self._table(node))
            return
        if isinstance(node, n.topic) and "contents" in node.get("classes", []):
            return
        if isinstance(node, (n.bullet_list, n.enumerated_list)):
            depth = 0 if indent is None else indent + 1
            self.list_level += 1
            for item in node.children:
                self.bullet = True
                for child in item.children:
                    self._body(child, depth)
                self.bullet = False
            self.list_level -= 1
            if indent is None:
                self._flush()
            return
        if isinstance(node, n.definition_list):
            depth = 0 if indent is None else indent
            for item in node.children:
                term = _collapse(
                    " : ".join(
                        c.astext() for c in item.children if isinstance(c, (n.term, n.classifier))
                    )
                )
                body = [c for d in item.children if isinstance(d, n.definition) for c in d.children]
                self._labelled(term, body, depth)
            if indent is None:
                self._flush()
            return
        if isinstance(node, n.field_list):
            depth = 0 if indent is None else indent
            for field in node.children:
                name = _collapse(
                    " ".join(c.astext() for c in field.children if isinstance(c, n.field_name))
                )
                body = [
                    c for d in field.children if isinstance(d, n.field_body) for c in d.children
                ]
                self._labelled(name, body, depth)
            if indent is None:
                self._flush()
            return
        if isinstance(node, n.option_list):
            depth = 0 if indent is None else indent
            for item in node.children:
                opts = _collapse(", ".join(c.astext() for c in item.findall(n.option)))
                body = [
                    c for d in item.children if isinstance(d, n.description) for c in d.children
                ]
                self._labelled(opts, body, depth)
            if indent is None:
                self._flush()
            return
        if isinstance(node, n.Admonition):
            children = list(node.children)
            if isinstance(node, n.admonition) and children and isinstance(children[0], n.title):
                label = _collapse(children[0].astext()) or "Note"
                children = children[1:]
            else:
                label = node.tagname.replace("_", " ").capitalize()
            self._labelled(label, children, 0 if indent is None else indent)
            if indent is None:
                self._flush()
            return
        if isinstance(node, n.line_block):
            depth = 0 if indent is None else indent
            for line in node.findall(n.line):
                self._text(line.astext(), depth)
            if indent is None:
                self._flush()
            return
        if isinstance(node, n.TextElement) and not any(
            isinstance(c, n.Body) and not isinstance(c, n.Inline) for c in node.children
        ):
            self._text(node.astext(), indent)
            return
        for child in node.children:
            self._body(child, indent)

    def _table(self, table: Any) -> str:
        n = self.n
        lines: list[str] = []
        for child in table.children:
            if isinstance(child, n.title):
                lines.append(_collapse(child.astext()))
        for row in table.findall(n.row):
            cells = [
                _collapse(entry.astext()) for entry in row.children if isinstance(entry, n.entry)
            ]
            if any(cells):
                lines.append(" | ".join(cells))
        return "\n".join(lines)


def _parse_rst(text: str) -> tuple[str, list[Section]]:
    from docutils.core import publish_doctree

    _setup_rst()
    doctree = publish_doctree(text, settings_overrides=_rst_settings())
    _clean_doctree(doctree)
    return _RstConverter().convert(doctree)


def _load_rst(path: Path, source: str) -> Document:
    text = _read_text(path)
    if not text.strip():
        return Document(source=source, title="", format="rst")
    try:
        title, sections = _parse_rst(text)
    except (Exception, SystemExit) as exc:  # docutils can fail on pathological input
        log.debug("docutils failed on %s (%s); loading as plain text", source, exc)
        title, sections = _parse_plain(text, None)
    return Document(source=source, title=title, format="rst", sections=sections)
