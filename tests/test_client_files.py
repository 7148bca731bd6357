"""Walking files and folders into documents: keys, filtering, titles and content types."""

from __future__ import annotations

from pathlib import Path

import pytest

from docfoundry.v1 import search_pb2 as pb
from docfoundry_client.files import (
    DocumentSpec,
    count_files,
    extract_title,
    html_title,
    iter_documents,
    markdown_title,
)


def write(path: Path, text: str = "", *, data: bytes | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if data is not None:
        path.write_bytes(data)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def by_path(docs: list[DocumentSpec]) -> dict[str, DocumentSpec]:
    return {doc.path: doc for doc in docs}


@pytest.fixture
def docs_tree(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    write(root / "index.md", "# Welcome\n\nHello.\n")
    write(root / "guides" / "install.markdown", "Install\n=======\n\nSteps.\n")
    write(root / "guides" / "api.html", "<html><title>API</title><h1>Other</h1></html>")
    write(root / "guides" / "old.HTM", "<h1>Old page</h1>")
    write(root / "notes.txt", "# not a heading in plain text\n")
    write(root / "image.png", data=b"\x89PNG\r\n")
    write(root / "script.py", "print('hi')\n")
    write(root / ".hidden.md", "# Hidden file\n")
    write(root / ".git" / "HEAD.md", "# git\n")
    write(root / ".venv" / "lib" / "readme.md", "# venv\n")
    write(root / "node_modules" / "pkg" / "README.md", "# pkg\n")
    write(root / "__pycache__" / "x.md", "# cache\n")
    write(root / "sub" / ".cache" / "y.md", "# nested hidden\n")
    return root


def test_folder_walk_keeps_documents_and_skips_hidden_and_tool_dirs(docs_tree: Path) -> None:
    docs = list(iter_documents([docs_tree]))

    assert [doc.path for doc in docs] == [
        "docs/index.md",
        "docs/notes.txt",
        "docs/guides/api.html",
        "docs/guides/install.markdown",
        "docs/guides/old.HTM",
    ]


def test_folder_documents_have_titles_content_and_types(docs_tree: Path) -> None:
    docs = by_path(list(iter_documents([docs_tree])))

    index = docs["docs/index.md"]
    assert index.title == "Welcome"
    assert index.content == "# Welcome\n\nHello.\n"
    assert index.content_type == pb.CONTENT_TYPE_MARKDOWN
    assert docs["docs/guides/install.markdown"].title == "Install"
    assert docs["docs/guides/api.html"].title == "API"
    assert docs["docs/guides/api.html"].content_type == pb.CONTENT_TYPE_HTML
    assert docs["docs/guides/old.HTM"].title == "Old page"
    assert docs["docs/guides/old.HTM"].content_type == pb.CONTENT_TYPE_HTML
    assert docs["docs/notes.txt"].title == "notes"
    assert docs["docs/notes.txt"].content_type == pb.CONTENT_TYPE_PLAIN_TEXT
    assert all(doc.source_url == "" and not doc.chunks for doc in docs.values())


def test_keys_do_not_depend_on_where_the_folder_lives(tmp_path: Path) -> None:
    first = write(tmp_path / "a" / "docs" / "x" / "page.md", "# One\n").parents[1]
    second = write(tmp_path / "b" / "c" / "docs" / "x" / "page.md", "# Two\n").parents[1]

    assert [d.path for d in iter_documents([first])] == ["docs/x/page.md"]
    assert [d.path for d in iter_documents([second])] == ["docs/x/page.md"]


def test_root_makes_keys_relative_to_it(docs_tree: Path) -> None:
    docs = list(iter_documents([docs_tree / "guides", docs_tree / "index.md"], root=docs_tree))

    assert [doc.path for doc in docs] == [
        "guides/api.html",
        "guides/install.markdown",
        "guides/old.HTM",
        "index.md",
    ]


def test_path_outside_root_is_rejected(tmp_path: Path) -> None:
    outside = write(tmp_path / "elsewhere" / "page.md", "# Page\n")

    with pytest.raises(ValueError, match="not under"):
        list(iter_documents([outside], root=tmp_path / "docs"))


def test_file_inside_cwd_is_keyed_relative_to_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "project" / "guide" / "start.md", "# Start\n")
    monkeypatch.chdir(tmp_path / "project")

    docs = list(iter_documents([Path("guide/start.md")]))

    assert [(doc.path, doc.title) for doc in docs] == [("guide/start.md", "Start")]


def test_file_outside_cwd_is_keyed_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    page = write(tmp_path / "outside" / "deep" / "page.md", "# Page\n")
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")

    assert [doc.path for doc in iter_documents([page])] == ["page.md"]


def test_named_file_is_read_whatever_its_extension(tmp_path: Path) -> None:
    notes = write(tmp_path / "CHANGES.rst", "Changes\n=======\n")

    [doc] = iter_documents([notes], root=tmp_path)

    assert doc.path == "CHANGES.rst"
    assert doc.content_type == pb.CONTENT_TYPE_PLAIN_TEXT
    assert doc.title == "CHANGES"


def test_file_reached_twice_is_yielded_once(docs_tree: Path) -> None:
    docs = list(iter_documents([docs_tree, docs_tree / "index.md", docs_tree]))

    assert len(docs) == 5
    assert len({doc.path for doc in docs}) == 5


def test_missing_path_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope"):
        list(iter_documents([tmp_path / "nope"]))
    with pytest.raises(FileNotFoundError):
        count_files([tmp_path / "nope"])


def test_count_matches_documents(docs_tree: Path) -> None:
    paths = [docs_tree, docs_tree / "script.py"]

    assert count_files(paths) == len(list(iter_documents(paths))) == 6


def test_invalid_utf8_is_replaced_and_bom_dropped(tmp_path: Path) -> None:
    write(tmp_path / "bad.md", data=b"\xef\xbb\xbf# Caf\xe9 menu\n\nbody \xff\n")

    [doc] = iter_documents([tmp_path / "bad.md"], root=tmp_path)

    assert doc.title == "Caf\ufffd menu"
    assert doc.content == "# Caf\ufffd menu\n\nbody \ufffd\n"


def test_empty_markdown_falls_back_to_stem(tmp_path: Path) -> None:
    write(tmp_path / "empty-page.md", "")

    [doc] = iter_documents([tmp_path], root=tmp_path)

    assert (doc.path, doc.title) == ("empty-page.md", "empty-page")


@pytest.mark.parametrize(
    ("content", "title"),
    [
        ("# Title\n", "Title"),
        ("intro\n\n#   Spaced   title  ##\n", "Spaced title"),
        ("## Second level\n# First\n", "First"),
        ("#hashtag\n# Real\n", "Real"),
        ("```bash\n# install it\n```\n# After fence\n", "After fence"),
        ("~~~~\n```\n# inside\n~~~~\n# Out\n", "Out"),
        ("Setext title\n===\n# Later\n", "Setext title"),
        ("\n===\n", ""),
        ("    # indented code\n", ""),
        ("no heading at all\n", ""),
    ],
)
def test_markdown_title(content: str, title: str) -> None:
    assert markdown_title(content) == title


@pytest.mark.parametrize(
    ("content", "title"),
    [
        ("<html><head><TITLE>Page &amp; more</TITLE></head></html>", "Page & more"),
        ('<title lang="en">\n  Multi\n  line\n</title>', "Multi line"),
        ("<body><h1 class='x'>Main <em>heading</em></h1><h1>Second</h1></body>", "Main heading"),
        ("<title>  </title><h1>Fallback</h1>", "Fallback"),
        ("<!-- <title>Commented</title> --><h1>Visible</h1>", "Visible"),
        ("<p>nothing</p>", ""),
    ],
)
def test_html_title(content: str, title: str) -> None:
    assert html_title(content) == title


def test_plain_text_has_no_extracted_title() -> None:
    assert extract_title("# looks like markdown", pb.CONTENT_TYPE_PLAIN_TEXT) == ""
    assert extract_title("# Markdown", pb.CONTENT_TYPE_MARKDOWN) == "Markdown"
