"""Loaders: one per format, each yields sections with breadcrumbs and typed blocks."""

from __future__ import annotations

import io
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dirac_docs_mcp.errors import LoaderError
from dirac_docs_mcp.indexer.loaders import SUPPORTED_SUFFIXES, load_document
from dirac_docs_mcp.schemas import Document

CORPUS = Path(__file__).parents[3] / "shared" / "corpus"


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        path.write_text(textwrap.dedent(content).lstrip("\n"), encoding="utf-8")
    else:
        path.write_bytes(content)
    return path


def load(tmp_path: Path, name: str, content: str | bytes) -> Document:
    return load_document(write(tmp_path, name, content), name)


def all_text(doc: Document) -> str:
    return "\n".join(
        [" / ".join(s.breadcrumb) for s in doc.sections]
        + [b.text for s in doc.sections for b in s.blocks]
    )


def blocks(doc: Document, kind: str) -> list[str]:
    return [b.text for s in doc.sections for b in s.blocks if b.kind == kind]


def section(doc: Document, crumb: list[str]):
    matches = [s for s in doc.sections if s.breadcrumb == crumb]
    assert matches, f"no section {crumb}; have {[s.breadcrumb for s in doc.sections]}"
    return matches[0]


# --------------------------------------------------------------------------------- rst


NESTED_RST = """
.. _guide:

Guide
=====

Intro paragraph of the guide.

Systems
-------

About the systems.

WMS
~~~

Set ``MaxJobsInFillMode`` under `/Resources/Sites/<site>` to limit
filling mode.

Other top
=========

Second top-level section.
"""


def test_rst_nested_sections_give_breadcrumbs(tmp_path):
    doc = load(tmp_path, "docs/guide.rst", NESTED_RST)
    assert doc.source == "docs/guide.rst"
    assert doc.format == "rst"
    assert doc.title == "Guide"
    assert section(doc, ["Guide"]).blocks[0].text == "Intro paragraph of the guide."
    assert section(doc, ["Guide", "Systems"]).blocks[0].text == "About the systems."
    wms = section(doc, ["Guide", "Systems", "WMS"]).blocks[0]
    assert wms.kind == "text"
    # inline literal / title reference keep their exact characters, lines joined
    assert wms.text == (
        "Set MaxJobsInFillMode under /Resources/Sites/<site> to limit filling mode."
    )
    # a later top-level section hangs under the document title
    assert section(doc, ["Guide", "Other top"]).blocks[0].text == "Second top-level section."


def test_rst_literal_blocks_keep_exact_text(tmp_path):
    doc = load(
        tmp_path,
        "code.rst",
        """
        Code
        ====

        Run this::

            dirac-proxy-init -g dirac_user
              --valid 24:00

        .. code-block:: bash
           :linenos:

           for i in 1 2; do
               echo "$i"
           done

        .. code:: python

           x = {"a": 1}
        """,
    )
    code = blocks(doc, "code")
    assert code == [
        "dirac-proxy-init -g dirac_user\n  --valid 24:00",
        'for i in 1 2; do\n    echo "$i"\ndone',
        'x = {"a": 1}',
    ]
    assert "Run this:" in blocks(doc, "text")


def test_rst_tables_are_single_blocks(tmp_path):
    doc = load(
        tmp_path,
        "tables.rst",
        """
        Tables
        ======

        +-------------------+------------------+
        | **Name**          | **Description**  |
        +===================+==================+
        | *FailedTimeHours* | Hours before a   |
        |                   | job fails        |
        +-------------------+------------------+
        | MatchedTime       | Age in seconds   |
        +-------------------+------------------+

        .. list-table:: Options
           :header-rows: 1

           * - Option
             - Default
           * - PollingTime
             - 120

        =====  =====
        A      B
        =====  =====
        1      2
        =====  =====
        """,
    )
    tables = blocks(doc, "table")
    assert len(tables) == 3
    assert tables[0] == (
        "Name | Description\nFailedTimeHours | Hours before a job fails\nMatchedTime | Age in seconds"
    )
    assert tables[1] == "Options\nOption | Default\nPollingTime | 120"
    assert tables[2] == "A | B\n1 | 2"


def test_rst_lists_definitions_fields_and_admonitions(tmp_path):
    doc = load(
        tmp_path,
        "lists.rst",
        """
        Lists
        =====

        - first item
        - second item
          spanning lines

          * nested item

        #. numbered

        PollingTime
           Seconds between cycles.

        :Port: 9130

        .. note::

           Restart the agent afterwards.

        .. warning:: Never delete the proxy.
        """,
    )
    text = blocks(doc, "text")
    assert "- first item\n- second item spanning lines\n  - nested item" in text
    assert "- numbered" in text
    assert "PollingTime: Seconds between cycles." in text
    assert "Port: 9130" in text
    assert "Note: Restart the agent afterwards." in text
    assert "Warning: Never delete the proxy." in text


SPHINX_RST = """
Sphinx things
=============

.. toctree::
   :maxdepth: 2

   install
   configure

.. highlight:: bash

.. contents:: Table of contents
   :local:

See :ref:`the agent options <stalled-options>` and :ref:`plain-target`,
:doc:`/AdministratorGuide/index`, :mod:`DIRAC.WorkloadManagementSystem`,
:py:class:`~DIRAC.Core.Base.AgentModule` and :func:`getJobs`.

.. versionadded:: 7.3
   The StalledJobsTolerantSites option.

.. deprecated:: 8.0

.. seealso:: The JobWrapper section.

.. autoclass:: DIRAC.WorkloadManagementSystem.Agent.StalledJobAgent.StalledJobAgent
   :members:

.. literalinclude:: /../../src/DIRAC/WorkloadManagementSystem/ConfigTemplate.cfg
   :start-after: ##BEGIN StalledJobAgent
   :end-before: ##END

.. image:: images/diagram.png
   :width: 300

.. graphviz::

   digraph { a -> b }

.. tabs::

   .. tab:: Linux

      Install with the installer script.

.. option:: --lifetime <hours>

   Proxy lifetime.

.. confval:: MaxCycles

   Number of cycles.

.. frobnicate:: totally unknown directive
   :flavour: strong

   Its body text survives.

An :unknownrole:`odd role` and a substitution |undefined|.

.. raw:: html

   <b>raw html</b>

.. include:: other.rst
"""


def test_rst_sphinx_directives_and_roles_degrade_to_text(tmp_path):
    doc = load(tmp_path, "sphinx.rst", SPHINX_RST)
    text = all_text(doc)
    assert "Unknown directive" not in text
    assert "Unknown interpreted text role" not in text
    assert "System Message" not in text
    assert "No directive entry" not in text
    assert "the agent options" in text and "stalled-options" not in text
    assert "plain-target" in text
    assert "/AdministratorGuide/index" in text
    assert "DIRAC.WorkloadManagementSystem" in text
    assert "DIRAC.Core.Base.AgentModule" in text and "~" not in text
    assert "New in version 7.3: The StalledJobsTolerantSites option." in text
    assert "Deprecated since version 8.0" in text
    assert "See also: The JobWrapper section." in text
    assert "DIRAC.WorkloadManagementSystem.Agent.StalledJobAgent.StalledJobAgent" in text
    assert "Install with the installer script." in text
    assert "--lifetime <hours>" in text and "Proxy lifetime." in text
    assert "MaxCycles" in text
    assert "Its body text survives." in text
    assert "odd role" in text and ":unknownrole:" not in text
    assert "digraph { a -> b }" in blocks(doc, "code")
    # navigation-only and disabled directives leave nothing behind
    assert "configure" not in text
    assert "Table of contents" not in text
    assert "raw html" not in text
    assert ":members:" not in text and "start-after" not in text


def test_rst_malformed_input_still_loads(tmp_path):
    doc = load(
        tmp_path,
        "bad.rst",
        """
        Short underline
        ===

        Some ``unbalanced literal and *emphasis text.

        +-----+-----+
        | bad | table
        +-----+

        .. code-block::

        Trailing :ref:`broken role text
        """,
    )
    text = all_text(doc)
    assert "Short underline" in text
    assert "unbalanced literal" in text
    assert "Trailing" in text
    assert "Unknown" not in text


def test_rst_falls_back_to_plain_text_when_docutils_fails(tmp_path, monkeypatch):
    import docutils.core

    def boom(*args, **kwargs):
        raise RuntimeError("docutils exploded")

    monkeypatch.setattr(docutils.core, "publish_doctree", boom)
    doc = load(tmp_path, "guide.rst", NESTED_RST)
    assert doc.title == "Guide"
    assert section(doc, ["Guide", "Systems"]).blocks[0].text == "About the systems."
    assert "Intro paragraph of the guide." in all_text(doc)


def test_rst_content_before_first_section(tmp_path):
    doc = load(
        tmp_path,
        "pre.rst",
        """
        A preamble paragraph.

        Title
        =====

        Body.
        """,
    )
    assert doc.sections[0].breadcrumb == ["Title"]
    assert doc.sections[0].blocks[0].text == "A preamble paragraph."
    untitled = load(tmp_path, "untitled.rst", "Just a paragraph.\n")
    assert untitled.sections[0].breadcrumb == []


# ---------------------------------------------------------------------------------- md


MARKDOWN = """
---
title: "Front Title"
tags: [a, b]
---

# Install DiracX

Intro with `inline code` and a [link](https://example.org).

## Requirements

- Python 3.11
- Kubernetes
  - kind

### Versions

Pin versions.

## Configure

```yaml
tasks:
  common:
    enabled: true
```

| Option | Default |
|--------|---------|
| `rate_limit` | 100 |

<div class="admonition"><p>HTML &amp; more</p></div>

!!! warning "Version compatibility"

    Upgrade DiracX first.

        indented code inside the admonition
"""


def test_md_headings_code_tables_front_matter(tmp_path):
    doc = load(tmp_path, "diracx/install.md", MARKDOWN)
    assert doc.format == "md"
    assert doc.title == "Front Title"
    crumbs = [s.breadcrumb for s in doc.sections]
    assert crumbs == [
        ["Install DiracX"],
        ["Install DiracX", "Requirements"],
        ["Install DiracX", "Requirements", "Versions"],
        ["Install DiracX", "Configure"],
    ]
    text = all_text(doc)
    assert "title:" not in text and "tags:" not in text
    assert section(doc, ["Install DiracX"]).blocks[0].text == ("Intro with inline code and a link.")
    assert "- Python 3.11\n- Kubernetes\n  - kind" in blocks(doc, "text")
    configure = section(doc, ["Install DiracX", "Configure"])
    kinds = [b.kind for b in configure.blocks]
    assert kinds[:2] == ["code", "table"]
    assert configure.blocks[0].text == "tasks:\n  common:\n    enabled: true"
    assert configure.blocks[1].text == "Option | Default\nrate_limit | 100"
    assert "HTML & more" in text and "<div" not in text
    # mkdocs admonition bodies are prose, not indented code
    assert "Warning: Version compatibility" in text
    assert "Upgrade DiracX first." in blocks(doc, "text")
    assert "indented code inside the admonition" in blocks(doc, "code")


def test_md_new_heading_replaces_same_level(tmp_path):
    doc = load(
        tmp_path,
        "levels.md",
        "Before.\n\n# A\n\n### deep\n\nx\n\n## B\n\ny\n\n# C\n\nz\n",
    )
    assert [s.breadcrumb for s in doc.sections] == [
        ["A"],
        ["A", "deep"],
        ["A", "B"],
        ["C"],
    ]
    assert doc.sections[0].blocks[0].text == "Before."


# --------------------------------------------------------------------------------- txt


HELP_TXT = """
dirac-login
===========

With this command you can log in to DIRAC.
There are two options:
  - using a user certificate.

Example:
  $ dirac-login dirac_user

Arguments:

  group: select a DIRAC group.

Options:

  -T --lifetime <value>   : set access lifetime in hours
  --nocs                  : disable CS.
"""


def test_txt_command_help(tmp_path):
    doc = load(tmp_path, "commands/dirac-login.txt", HELP_TXT)
    assert doc.format == "txt"
    assert doc.title == "dirac-login"
    first = section(doc, ["dirac-login"])
    assert first.blocks[0].kind == "text"
    assert first.blocks[0].text.startswith("With this command you can log in to DIRAC.\n")
    example = section(doc, ["dirac-login", "Example"])
    assert example.blocks[0].text == "  $ dirac-login dirac_user"
    assert example.blocks[0].kind == "code"
    options = section(doc, ["dirac-login", "Options"])
    assert "-T --lifetime <value>   : set access lifetime in hours" in options.blocks[0].text
    assert "--nocs" in options.blocks[0].text
    assert section(doc, ["dirac-login", "Arguments"]).blocks[0].text.strip() == (
        "group: select a DIRAC group."
    )


def test_txt_without_headings(tmp_path):
    doc = load(tmp_path, "notes.txt", "first para\nline two\n\nsecond para\n")
    assert [s.breadcrumb for s in doc.sections] == [["notes"]]
    assert [b.text for b in doc.sections[0].blocks] == ["first para\nline two", "second para"]


# --------------------------------------------------------------------------------- cfg


DIRAC_CFG = """
# The "Systems" section holds the systems.
Systems
{
  WorkloadManagement
  {
    Agents
    {
      # The StalledJobAgent marks stalled jobs
      StalledJobAgent
      {
        # Hours before a job is declared stalled
        StalledTimeHours = 2
        FailedTimeHours = 6
        ##BEGIN marker
        #Commented = option

        MatchedTime = 7200
      }
    }
  }
  Global = yes
}
"""


def test_cfg_nested_blocks(tmp_path):
    doc = load(tmp_path, "DIRAC/dirac.cfg", DIRAC_CFG)
    assert doc.format == "cfg"
    assert doc.title == "dirac.cfg"
    agent = section(
        doc, ["dirac.cfg", "Systems", "WorkloadManagement", "Agents", "StalledJobAgent"]
    )
    texts = [b.text for b in agent.blocks]
    assert texts == [
        "# The StalledJobAgent marks stalled jobs\n"
        "# Hours before a job is declared stalled\n"
        "StalledTimeHours = 2\nFailedTimeHours = 6",
        "#Commented = option",  # a comment after options starts the next group
        "MatchedTime = 7200",
    ]
    assert "##BEGIN" not in all_text(doc)
    systems = [s for s in doc.sections if s.breadcrumb == ["dirac.cfg", "Systems"]]
    assert [b.text for s in systems for b in s.blocks] == [
        '# The "Systems" section holds the systems.',
        "Global = yes",
    ]


def test_cfg_config_template_path_prefix(tmp_path):
    path = write(
        tmp_path,
        "src/DIRAC/WorkloadManagementSystem/ConfigTemplate.cfg",
        "Agents\n{\n  StalledJobAgent\n  {\n    PollingTime = 120\n  }\n}\n",
    )
    doc = load_document(path, "src/DIRAC/WorkloadManagementSystem/ConfigTemplate.cfg")
    assert doc.sections[0].breadcrumb == [
        "WorkloadManagement ConfigTemplate",
        "Systems",
        "WorkloadManagement",
        "Agents",
        "StalledJobAgent",
    ]
    assert doc.sections[0].blocks[0].text == "PollingTime = 120"


@pytest.mark.parametrize(
    "content",
    [
        "A\n{\n  B\n  {\n    x = 1\n",  # never closed
        "}\n}\nx = 1\n}\n",  # closed too often
        "{\n{\n= =\n}}\n",  # nameless blocks, odd lines
        "Name {\n  y = 2\n}\n",  # brace on the name line
    ],
)
def test_cfg_unbalanced_braces_do_not_raise(tmp_path, content):
    doc = load(tmp_path, "odd.cfg", content)
    assert all(s.breadcrumb and s.breadcrumb[0] == "odd.cfg" for s in doc.sections)
    assert doc.sections


# --------------------------------------------------------------------- common behaviour


@pytest.mark.parametrize("suffix", sorted(SUPPORTED_SUFFIXES))
@pytest.mark.parametrize("content", [b"", b"   \n\t\n"])
def test_empty_files_have_no_sections(tmp_path, suffix, content):
    doc = load(tmp_path, f"empty{suffix}", content)
    assert doc.sections == []
    assert doc.format == suffix[1:]


@pytest.mark.parametrize("suffix", [".rst", ".md", ".txt", ".cfg"])
def test_non_utf8_bytes_and_nul(tmp_path, suffix):
    doc = load(tmp_path, f"latin{suffix}", b"Heading\n=======\n\ncaf\xe9 \xff bar\x00baz = 1\n")
    text = all_text(doc)
    assert "caf\ufffd \ufffd" in text
    assert "barbaz" in text
    assert "\x00" not in text


def test_suffix_is_case_insensitive(tmp_path):
    doc = load(tmp_path, "UPPER.MD", "# Title\n\ntext\n")
    assert doc.format == "md"
    assert doc.sections[0].breadcrumb == ["Title"]


def test_unsupported_and_unreadable_files(tmp_path):
    with pytest.raises(LoaderError, match="unsupported"):
        load(tmp_path, "x.docx", b"data")
    with pytest.raises(LoaderError, match="cannot read"):
        load_document(tmp_path / "missing.rst", "missing.rst")
    (tmp_path / "dir.md").mkdir()
    with pytest.raises(LoaderError):
        load_document(tmp_path / "dir.md", "dir.md")


def test_unexpected_errors_are_wrapped(tmp_path, monkeypatch):
    from dirac_docs_mcp.indexer.loaders import markdown as loaders

    def broken(*args, **kwargs):
        raise ValueError("multi\nline\nfailure")

    monkeypatch.setattr(loaders, "_parse_md", broken)
    with pytest.raises(LoaderError) as info:
        load(tmp_path, "a.md", "# x\n")
    assert "\n" not in str(info.value)
    assert "ValueError" in str(info.value)


markup = st.lists(
    st.sampled_from(
        list("abc XYZ:`*_-=~|+#{}<>.\n\t\\[]()!\x00é")
        + ["..", "::", "\n\n", ".. note:: ", ":ref:`", "```", "===\n", "+--+\n", "- ", "   "]
    ),
    max_size=120,
).map("".join)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(content=markup, suffix=st.sampled_from([".rst", ".md", ".txt", ".cfg"]))
def test_any_text_loads_without_error(tmp_path, content, suffix):
    doc = load(tmp_path, f"fuzz{suffix}", content)
    for sec in doc.sections:
        assert all(c and c == " ".join(c.split()) for c in sec.breadcrumb)
        assert all(b.text.strip() for b in sec.blocks)


# --------------------------------------------------------------------------------- pdf


def make_pdf(pages: list[list[str]], title: str | None = "Storage Guide") -> bytes:
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=A4)
    if title:
        c.setTitle(title)
    for lines in pages:
        y = 800
        for line in lines:
            if line:
                c.drawString(72, y, line)
            y -= 16
        c.showPage()
    c.save()
    return buf.getvalue()


def test_pdf_pages_become_sections(tmp_path):
    data = make_pdf(
        [
            ["Storage elements", "", "A StorageElement describes an SRM endpoint."],
            ["Second page talks about", "the FileCatalog."],
        ]
    )
    doc = load(tmp_path, "pdf/storage.pdf", data)
    assert doc.format == "pdf"
    assert doc.title == "Storage Guide"
    assert [s.page for s in doc.sections] == [1, 2]
    assert all(s.breadcrumb == ["Storage Guide"] for s in doc.sections)
    page1 = " ".join(b.text for b in doc.sections[0].blocks)
    page2 = " ".join(b.text for b in doc.sections[1].blocks)
    assert "StorageElement describes an SRM endpoint" in page1
    assert "FileCatalog" in page2 and "FileCatalog" not in page1


def test_pdf_numbered_headings_extend_the_breadcrumb(tmp_path):
    data = make_pdf(
        [
            ["Intro text on page one.", "3.1. Architecture", "The TS has agents."],
            ["More architecture.", "3.1.2. Plugins", "Plugins group files."],
            ["1. Stop the production.", "Next steps follow."],
        ],
        title="3. Transformation System — DIRAC documentation",
    )
    doc = load(tmp_path, "ts.pdf", data)
    assert doc.title == "3. Transformation System"  # the site suffix is dropped
    got = [(s.page, s.breadcrumb[1:], s.blocks[0].text) for s in doc.sections]
    assert got == [
        (1, [], "Intro text on page one."),
        (1, ["3.1. Architecture"], "The TS has agents."),
        (2, ["3.1. Architecture"], "More architecture."),
        (2, ["3.1. Architecture", "3.1.2. Plugins"], "Plugins group files."),
        (3, ["3.1. Architecture", "3.1.2. Plugins"], "1. Stop the production.\nNext steps follow."),
    ]


def test_pdf_title_falls_back_to_stem(tmp_path):
    doc = load(tmp_path, "manual.pdf", make_pdf([["hello world"]], title=None))
    assert doc.title == "manual"
    assert doc.sections[0].breadcrumb == ["manual"]


def test_pdf_garbage_raises(tmp_path):
    with pytest.raises(LoaderError, match="PDF"):
        load(tmp_path, "garbage.pdf", b"this is not a pdf at all\n" * 20)


def test_pdf_encrypted_raises(tmp_path):
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for page in PdfReader(io.BytesIO(make_pdf([["secret text"]]))).pages:
        writer.add_page(page)
    writer.encrypt("secret")
    buf = io.BytesIO()
    writer.write(buf)
    with pytest.raises(LoaderError, match="encrypted"):
        load(tmp_path, "locked.pdf", buf.getvalue())


def test_pdf_encrypted_with_empty_password_loads(tmp_path):
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for page in PdfReader(io.BytesIO(make_pdf([["open text"]]))).pages:
        writer.add_page(page)
    writer.encrypt(user_password="", owner_password="owner")
    buf = io.BytesIO()
    writer.write(buf)
    doc = load(tmp_path, "open.pdf", buf.getvalue())
    assert "open text" in all_text(doc)


# ------------------------------------------------------------------------ real corpus


@pytest.mark.integration
@pytest.mark.skipif(not CORPUS.is_dir(), reason="shared corpus not present")
def test_corpus_loads():
    files = [p for p in sorted(CORPUS.rglob("*")) if p.suffix.lower() in SUPPORTED_SUFFIXES]
    assert len(files) > 500
    docs = {}
    for path in files:
        rel = path.relative_to(CORPUS).as_posix()
        docs[rel] = load_document(path, rel)  # no file may fail
    stalled = next(d for rel, d in docs.items() if rel.endswith("Agents/StalledJobAgent/index.rst"))
    assert any("StalledJobAgent" in " ".join(s.breadcrumb) for s in stalled.sections)
    assert any("StalledJobsToleranceTime" in t for t in blocks(stalled, "table"))
    template = docs["DIRAC/src/DIRAC/WorkloadManagementSystem/ConfigTemplate.cfg"]
    assert any(s.breadcrumb[-1] == "StalledJobAgent" for s in template.sections)
    for doc in docs.values():
        text = all_text(doc)
        assert "Unknown directive type" not in text, doc.source
        assert "Unknown interpreted text role" not in text, doc.source
