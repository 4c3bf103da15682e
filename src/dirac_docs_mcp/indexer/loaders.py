"""One loader per source format, each turning a file into a :class:`Document`.

Every loader returns sections (a heading breadcrumb and its blocks in document order);
blocks are prose (``text``), literal/code blocks (``code``, exact text) or tables
(``table``, one row per line, cells joined with ``" | "``). :func:`load_document`
dispatches on the file suffix and turns every failure into a one-line
:class:`~dirac_docs_mcp.errors.LoaderError`.
"""

from __future__ import annotations

import html
import io
import logging
import re
import textwrap
import unicodedata
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from ..errors import LoaderError
from ..schemas import Block, BlockKind, Document, Section

log = logging.getLogger(__name__)

SUPPORTED_SUFFIXES: frozenset[str] = frozenset({".rst", ".md", ".txt", ".cfg", ".pdf"})


# ---------------------------------------------------------------------------------------
# shared helpers


def _collapse(text: str) -> str:
    """Whitespace collapsed to single spaces, stripped."""
    return " ".join(text.split())


def _decode(data: bytes) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("utf-8", errors="replace")
    text = text.replace("\x00", "")
    if text.startswith("\ufeff"):
        text = text[1:]
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LoaderError(f"cannot read file: {exc.strerror or exc}") from exc
    return _decode(data)


class _Sections:
    """Collects blocks into sections; a new section starts whenever the breadcrumb changes."""

    def __init__(self) -> None:
        self.sections: list[Section] = []
        self.crumb: list[str] = []
        self.page: int | None = None
        self._current: Section | None = None

    def set_crumb(self, crumb: list[str], page: int | None = None) -> None:
        crumb = [c for c in (_collapse(x) for x in crumb) if c]
        if crumb != self.crumb or page != self.page:
            self.crumb = crumb
            self.page = page
            self._current = None

    def add(self, kind: BlockKind, text: str) -> None:
        if kind == "text":
            text = text.strip()
        else:
            text = text.strip("\n").rstrip()
        if not text.strip():
            return
        if self._current is None:
            self._current = Section(breadcrumb=list(self.crumb), page=self.page)
            self.sections.append(self._current)
        self._current.blocks.append(Block(kind=kind, text=text))


# ---------------------------------------------------------------------------------------
# plain text (.txt, and the fallback for rst that docutils cannot parse)

_UNDERLINE = re.compile(r"""^([=\-~^"'`#*+_.:<>])\1{2,}\s*$""")
_KEYWORD_HEADER = re.compile(
    r"^(usage|options|general options|arguments|examples?|description|notes?|parameters|commands|see also)"
    r"\s*:\s*(.*)$",
    re.IGNORECASE,
)


def _is_underline(line: str | None, text: str) -> bool:
    if line is None or not _UNDERLINE.match(line):
        return False
    return len(line.strip()) >= max(3, int(len(text.strip()) * 0.6))


def _parse_plain(text: str, stem: str | None) -> tuple[str, list[Section]]:
    """Paragraphs split on blank lines; underlined headings and ``Options:``-style headers
    start sub-sections.

    With ``stem`` (txt files) the breadcrumb root is the stem and a first heading equal to it
    is the title; without it (rst fallback) the first heading becomes the root.
    """
    out = _Sections()
    root: list[str] = [stem] if stem else []
    title = stem or ""
    level1: str | None = None
    level2: str | None = None
    para: list[str] = []
    seen_heading = False

    def crumb() -> list[str]:
        return root + [x for x in (level1, level2) if x]

    def flush() -> None:
        if not para:
            return
        lines = [ln.rstrip() for ln in para]
        para.clear()
        body = [ln for ln in lines if ln.strip()]
        if not body:
            return
        indented = all(ln.startswith((" ", "\t")) for ln in body)
        shell = any(ln.lstrip().startswith("$ ") for ln in body)
        out.set_crumb(crumb())
        out.add("code" if indented or shell else "text", "\n".join(lines))

    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        nxt = lines[i + 1] if i + 1 < len(lines) else None
        heading: str | None = None
        if (
            _UNDERLINE.match(line)
            and nxt is not None
            and nxt.strip()
            and i + 2 < len(lines)
            and _is_underline(lines[i + 2], nxt)
        ):
            heading, i = nxt, i + 3  # over- and underlined title
        elif line.strip() and not _UNDERLINE.match(line) and _is_underline(nxt, line):
            heading, i = line, i + 2
        if heading is not None:
            flush()
            heading = _collapse(heading)
            if not seen_heading and not para and stem is None and not root:
                root, title = [heading], heading
            elif not seen_heading and stem is not None and heading.lower() == stem.lower():
                title = heading
            else:
                level1, level2 = heading, None
            seen_heading = True
            continue
        m = _KEYWORD_HEADER.match(line)
        if m and not line.startswith((" ", "\t")):
            flush()
            level2 = m.group(1).strip()
            if m.group(2).strip():
                para.append(line)
            i += 1
            continue
        if not line.strip():
            flush()
        else:
            para.append(line)
        i += 1
    flush()
    return title, out.sections


def _load_txt(path: Path, source: str) -> Document:
    text = _read_text(path)
    if not text.strip():
        return Document(source=source, title=path.stem, format="txt")
    title, sections = _parse_plain(text, path.stem)
    return Document(source=source, title=title, format="txt", sections=sections)


# ---------------------------------------------------------------------------------------
# reStructuredText via docutils

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


# ---------------------------------------------------------------------------------------
# Markdown via markdown-it-py

_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?\n)(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.DOTALL)
_FM_TITLE = re.compile(r"^title\s*:\s*(.+?)\s*$", re.MULTILINE)
_MKDOCS_BLOCK = re.compile(
    r"^([ \t]*)(!!!|\?\?\?\+?|===)[ \t]*([\w-]*)[ \t]*(?:\"([^\"]*)\")?[ \t]*$"
)
_FENCE = re.compile(r"^[ \t]*(```+|~~~+)")
_HTML_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_HTML_TAG = re.compile(r"<[^>]*>")


def _md_front_matter(text: str) -> tuple[str, str]:
    """Strip YAML front matter; return (title from it or "", remaining text)."""
    m = _FRONT_MATTER.match(text)
    if not m:
        return "", text
    t = _FM_TITLE.search(m.group(1))
    title = t.group(1).strip().strip("\"'") if t else ""
    return _collapse(title), text[m.end() :]


def _md_unwrap_mkdocs(text: str) -> str:
    """Turn mkdocs-material admonitions and tabs (``!!! note "T"`` + indented body) into
    a label paragraph and an un-indented body, so CommonMark does not read the body as code."""
    out: list[str] = []
    fence: str | None = None
    stack: list[int] = []  # original indentation of the bodies of open mkdocs blocks
    for line in text.split("\n"):
        if line.strip():
            width = len(line) - len(line.lstrip(" "))
            while stack and width < stack[-1]:
                stack.pop()
            shift = stack[-1] if stack else 0
            line = line[shift:]
        else:
            width = 0
        fm = _FENCE.match(line)
        if fm:
            marker = fm.group(1)[:3]
            if fence is None:
                fence = marker
            elif marker == fence:
                fence = None
            out.append(line)
            continue
        m = None if fence else _MKDOCS_BLOCK.match(line)
        if m and (m.group(3) or m.group(4)):
            indent, kind, name, label = m.groups()
            if kind == "===":
                head = label or name
            else:
                head = (name or "note").capitalize() + (f": {label}" if label else ":")
            out.extend([f"{indent}{head}", ""])
            stack.append(width + 4)
            continue
        out.append(line)
    return "\n".join(out)


def _md_inline(token: Any) -> str:
    parts: list[str] = []
    for child in token.children or []:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append("\n")
        elif child.type == "html_inline":
            parts.append(" " if child.content.lower().startswith("<br") else "")
    if not token.children:
        parts.append(token.content)
    return "".join(parts)


def _parse_md(text: str, fm_title: str) -> tuple[str, list[Section]]:
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark").enable("table")
    tokens = md.parse(text)
    h1 = next(
        (
            _collapse(_md_inline(tokens[i + 1]))
            for i, t in enumerate(tokens[:-1])
            if t.type == "heading_open" and t.tag == "h1"
        ),
        "",
    )
    root = [fm_title] if fm_title and not h1 else []
    title = fm_title or h1
    out = _Sections()
    out.set_crumb([title] if title else [])
    stack: dict[int, str] = {}
    lines: list[str] = []
    depth = 0
    bullet = False
    in_table = False
    rows: list[str] = []
    row: list[str] = []

    def flush() -> None:
        if lines:
            out.add("text", "\n".join(lines))
            lines.clear()

    def emit_text(value: str) -> None:
        nonlocal bullet
        value = _collapse(value)
        if not value:
            return
        if depth == 0:
            flush()
            out.add("text", value)
        else:
            lead = "  " * (depth - 1)
            lines.append(f"{lead}- {value}" if bullet else f"{lead}  {value}")
            bullet = False

    i = 0
    while i < len(tokens):
        tok = tokens[i]
        kind = tok.type
        if kind == "heading_open":
            level = int(tok.tag[1:]) if tok.tag[1:].isdigit() else 1
            heading = _collapse(_md_inline(tokens[i + 1])) if i + 1 < len(tokens) else ""
            flush()
            if heading:
                for lv in [lv for lv in stack if lv >= level]:
                    del stack[lv]
                stack[level] = heading
                out.set_crumb(root + [stack[lv] for lv in sorted(stack)])
            i += 3
            continue
        if kind == "inline":
            if in_table:
                row.append(_collapse(_md_inline(tok)))
            else:
                emit_text(_md_inline(tok))
        elif kind in ("fence", "code_block"):
            flush()
            bullet = False
            out.add("code", tok.content)
        elif kind in ("bullet_list_open", "ordered_list_open"):
            depth += 1
        elif kind in ("bullet_list_close", "ordered_list_close"):
            depth = max(0, depth - 1)
            if depth == 0:
                flush()
        elif kind == "list_item_open":
            bullet = True
        elif kind == "table_open":
            flush()
            in_table, rows = True, []
        elif kind == "tr_open":
            row = []
        elif kind == "tr_close":
            if any(row):
                rows.append(" | ".join(row))
        elif kind == "table_close":
            in_table = False
            out.add("table", "\n".join(rows))
        elif kind == "html_block":
            stripped = html.unescape(_HTML_TAG.sub(" ", _HTML_COMMENT.sub(" ", tok.content)))
            emit_text(stripped)
        i += 1
    flush()
    if not title:
        first = next((s.breadcrumb[0] for s in out.sections if s.breadcrumb), "")
        title = first
    return title, out.sections


def _load_md(path: Path, source: str) -> Document:
    text = _read_text(path)
    if not text.strip():
        return Document(source=source, title="", format="md")
    fm_title, body = _md_front_matter(text)
    title, sections = _parse_md(_md_unwrap_mkdocs(body), fm_title)
    return Document(source=source, title=title, format="md", sections=sections)


# ---------------------------------------------------------------------------------------
# DIRAC CFG

_CFG_OPTION = re.compile(r"^[^#={}\s][^={}]*?\s*\+?=")
_CFG_NAME = re.compile(r"^[^#={}]+$")
_CFG_MARKER = re.compile(r"^##\s*(BEGIN|END)\b")


def _cfg_root(path: Path, source: str) -> tuple[str, list[str]]:
    """Title and breadcrumb prefix: ``src/DIRAC/XSystem/ConfigTemplate.cfg`` holds the
    options of ``/Systems/X/<instance>``."""
    parent = PurePosixPath(source).parent.name
    if (
        path.name == "ConfigTemplate.cfg"
        and parent.endswith("System")
        and len(parent) > len("System")
    ):
        system = parent[: -len("System")]
        return f"{system} ConfigTemplate", [f"{system} ConfigTemplate", "Systems", system]
    return path.name, [path.name]


def _parse_cfg(text: str, root: list[str]) -> list[Section]:
    """Blocks of comment lines + options become text blocks under ``root`` + nesting path.

    Comment lines directly before a ``Name { ... }`` block (no blank line between) document
    it and go into the block. Unbalanced braces are tolerated (extra ``}`` ignored, unclosed blocks end at EOF).
    """
    out = _Sections()
    stack: list[str] = []
    group: list[str] = []  # comment lines + option lines, one text block
    has_option = False
    owned = 0  # leading lines of group carried in from above the current block's name
    pending_name: str | None = None  # a bare line that may name the next ``{`` block

    def flush() -> None:
        nonlocal has_option, owned
        if group:
            out.set_crumb(root + stack)
            out.add("text", "\n".join(group))
            group.clear()
        has_option = False
        owned = 0

    def name_as_text() -> None:
        nonlocal pending_name
        if pending_name is not None:
            group.append(pending_name)
            pending_name = None

    for raw in text.split("\n"):
        line = raw.strip()
        if not line:  # paragraphs end at blank lines
            name_as_text()
            flush()
            continue
        if line.startswith("#"):
            if _CFG_MARKER.match(line) or not line.strip("#").strip():
                continue
            name_as_text()
            if has_option:
                flush()
            group.append(line)
            continue
        if line.endswith("{") and "=" not in line:
            name = _collapse(line[:-1]) or pending_name or "?"
            pending_name = None
            # comments right above the name describe the new block; older lines stay
            carried = [] if has_option else group[owned:]
            del group[len(group) - len(carried) :]
            flush()
            stack.append(_collapse(name))
            group.extend(carried)
            owned = len(carried)
            continue
        if set(line) <= {"}", " ", "\t"}:
            name_as_text()
            flush()
            for _ in range(line.count("}")):
                if stack:
                    stack.pop()
            continue
        name_as_text()
        if _CFG_NAME.match(line) and not _CFG_OPTION.match(line):
            pending_name = line
            continue
        group.append(line)
        has_option = True
    name_as_text()
    flush()
    return out.sections


def _load_cfg(path: Path, source: str) -> Document:
    text = _read_text(path)
    title, root = _cfg_root(path, source)
    if not text.strip():
        return Document(source=source, title=title, format="cfg")
    return Document(source=source, title=title, format="cfg", sections=_parse_cfg(text, root))


# ---------------------------------------------------------------------------------------
# PDF via pypdf

_PDF_TITLE_SUFFIX = re.compile(r"\s+[—–|-]\s+[^—–|]*\bdocumentation\s*$", re.IGNORECASE)
_PDF_HEADING = re.compile(r"^(\d+(?:\.\d+)+\.?)\s+[A-Z][^\n]{0,100}$")
_SENTENCE_END = re.compile(r"[.!?:]['\")\]]*$")


def _pdf_paragraphs(text: str) -> list[str]:
    text = text.replace("\x00", "")
    if re.search(r"\n[ \t]*\n", text):
        return [p.strip("\n") for p in re.split(r"\n[ \t]*\n", text) if p.strip()]
    lines = [ln.rstrip() for ln in text.split("\n")]
    lines = [ln for ln in lines if ln.strip()]
    if not lines:
        return []
    widths = sorted(len(ln) for ln in lines)
    typical = widths[int(len(widths) * 0.75)] if widths else 80
    paras: list[str] = []
    cur: list[str] = []
    size = 0
    for ln in lines:
        cur.append(ln)
        size += len(ln)
        short_end = len(ln) < 0.7 * typical and bool(_SENTENCE_END.search(ln))
        if short_end or size > 1200:
            paras.append("\n".join(cur))
            cur, size = [], 0
    if cur:
        paras.append("\n".join(cur))
    return paras


def _load_pdf(path: Path, source: str) -> Document:
    from pypdf import PdfReader

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LoaderError(f"cannot read file: {exc.strerror or exc}") from exc
    if not data.strip():
        return Document(source=source, title=path.stem, format="pdf")
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            try:
                ok = reader.decrypt("")
            except Exception as exc:
                raise LoaderError(f"encrypted PDF (cannot decrypt: {_one_line(exc)})") from exc
            if not ok:
                raise LoaderError("encrypted PDF (password required)")
        pages = list(reader.pages)
    except LoaderError:
        raise
    except Exception as exc:
        raise LoaderError(f"malformed PDF: {_one_line(exc)}") from exc
    title = ""
    try:
        meta = reader.metadata
        title = _collapse(str(meta.title)) if meta and meta.title else ""
        title = unicodedata.normalize("NFKC", title)
    except Exception:  # metadata is optional and often broken
        title = ""
    title = _PDF_TITLE_SUFFIX.sub("", title)
    if not title or title.lower() in {"untitled", "microsoft word"}:
        title = path.stem
    out = _Sections()
    headings: dict[int, str] = {}  # numbered headings ("8.4.2. Data-processing") by depth

    def crumb() -> list[str]:
        return [title] + [headings[lv] for lv in sorted(headings) if headings[lv] != title]

    for number, page in enumerate(pages, start=1):
        try:
            text = page.extract_text() or ""
        except Exception as exc:  # one bad page does not spoil the document
            log.debug("%s: page %d not extracted: %s", source, number, exc)
            continue
        text = unicodedata.normalize("NFKC", text)  # ligatures (ﬁ) become plain letters
        out.set_crumb(crumb(), page=number)
        body: list[str] = []
        for line in text.split("\n"):
            m = _PDF_HEADING.match(line.strip())
            if m and not _SENTENCE_END.search(line.strip()):
                for para in _pdf_paragraphs("\n".join(body)):
                    out.add("text", para)
                body = []
                depth = m.group(1).rstrip(".").count(".") + 1
                for level in [lv for lv in headings if lv >= depth]:
                    del headings[level]
                headings[depth] = _collapse(line)
                out.set_crumb(crumb(), page=number)
            else:
                body.append(line)
        for para in _pdf_paragraphs("\n".join(body)):
            out.add("text", para)
    return Document(source=source, title=title, format="pdf", sections=out.sections)


# ---------------------------------------------------------------------------------------
# dispatch


def _one_line(exc: BaseException) -> str:
    text = _collapse(str(exc)) or type(exc).__name__
    return text[:300]


_LOADERS: dict[str, Callable[[Path, str], Document]] = {
    ".rst": _load_rst,
    ".md": _load_md,
    ".txt": _load_txt,
    ".cfg": _load_cfg,
    ".pdf": _load_pdf,
}


def load_document(path: Path, source: str) -> Document:
    """Parse ``path`` into a :class:`Document` whose ``source`` is ``source``.

    Raises :class:`LoaderError` (one-line message) for unsupported, unreadable or
    malformed files; an empty file gives a document without sections.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    loader = _LOADERS.get(suffix)
    if loader is None:
        raise LoaderError(f"unsupported file type: {suffix or '(no suffix)'}")
    try:
        return loader(path, source)
    except LoaderError:
        raise
    except RecursionError as exc:
        raise LoaderError(f"{suffix[1:]} document nested too deeply to parse") from exc
    except Exception as exc:
        raise LoaderError(
            f"{suffix[1:]} parse failed: {type(exc).__name__}: {_one_line(exc)}"
        ) from exc
