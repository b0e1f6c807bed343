"""Loading each supported kind of file, and refusing the rest with a reason."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from pypdf import PdfWriter

from advisor.errors import UnreadableFileError
from advisor.loaders import load_document
from advisor.types import DocumentInfo


def _info(path):
    return DocumentInfo(source=path.name, title=path.stem)


def _text_pdf(text: str) -> bytes:
    """A one-page PDF whose page shows `text` (Helvetica), written by hand."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        (
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
            b"/Resources << /Font << /F1 5 0 R >> >> >>"
        ),
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for n, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % n + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for off in offsets:
        out.write(b"%010d 00000 n \n" % off)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


def test_text_and_markdown(tmp_path):
    md = tmp_path / "notes.md"
    md.write_text("# Spread\n\nChampions help innovations spread.\n", encoding="utf-8")
    doc = load_document(md, _info(md))
    assert "Champions help innovations spread." in doc.text
    assert len(doc.content_hash) == 64


def test_html_drops_scripts_and_navigation(tmp_path):
    page = tmp_path / "page.html"
    page.write_text(
        "<html><head><style>p{}</style><script>alert('x')</script></head><body><nav>Home</nav>"
        "<h1>Scaling</h1><p>Adopters want <b>local</b> evidence.</p><ul><li>Champions</li></ul></body></html>",
        encoding="utf-8",
    )
    doc = load_document(page, _info(page))
    assert doc.text == "Scaling\n\nAdopters want local evidence.\n\n- Champions"


def test_pdf_text_and_pages(tmp_path):
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(_text_pdf("Evidence helps innovations spread."))
    doc = load_document(pdf, _info(pdf))
    assert "Evidence helps innovations spread." in doc.text
    assert doc.pages == ((1, 0),)


def test_encrypted_pdf_is_refused(tmp_path):
    writer = PdfWriter()
    writer.add_blank_page(612, 792)
    writer.encrypt(user_password="secret", owner_password="owner")
    pdf = tmp_path / "locked.pdf"
    with pdf.open("wb") as f:
        writer.write(f)
    with pytest.raises(UnreadableFileError, match="encrypted"):
        load_document(pdf, _info(pdf))


@pytest.mark.parametrize(
    "name,content,reason",
    [
        ("broken.pdf", b"%PDF-1.4\nnot really a pdf at all", "not a readable PDF"),
        ("empty.txt", b"  \n\n", "empty"),
        ("latin1.txt", "Café de l'innovation".encode("latin-1") * 10, "not UTF-8"),
        ("image.txt", bytes(range(256)) * 4, "binary|UTF-8"),
        ("slides.pptx", b"PK\x03\x04", "unsupported file type"),
        ("README", b"hello", "unsupported file type"),
    ],
)
def test_unreadable_files_say_why(tmp_path, name, content, reason):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(UnreadableFileError, match=reason):
        load_document(path, _info(path))


def test_text_pages_from_fused_running_headers(tmp_path):
    body = "".join(f"{n}Scaling in the NHS\n\n1 2 3\n\nText of page {n}.\n\n" for n in (3, 4, 7))
    path = tmp_path / "report.txt"
    path.write_text("Title page.\n\n" + body + "Stray 12Monkeys line.\n", encoding="utf-8")
    doc = load_document(path, _info(path))
    assert [p for p, _ in doc.pages] == [3, 4, 7]
    assert all(doc.text[offset:].startswith(f"{p}Scaling in the NHS") for p, offset in doc.pages)


def test_the_corpus_folders_own_yaml_data_is_never_read_as_a_report(tmp_path):
    from advisor.corpus import discover_files

    (tmp_path / "drafts").mkdir()
    (tmp_path / "report.txt").write_text("A report.")
    (tmp_path / "notes.docx").write_bytes(b"PK")  # still found, and later skipped with a reason
    (tmp_path / "drafts" / "part.yaml").write_text("points: []")
    (tmp_path / "manifest.yaml").write_text("reports: {}")
    assert [p.name for p in discover_files([tmp_path])] == ["notes.docx", "report.txt"]


def _links_around(tmp_path):
    """A corpus folder holding a report and links of every kind: out of it, within it, via a subfolder."""
    corpus, outside = tmp_path / "corpus", tmp_path / "outside"
    (corpus / "sub").mkdir(parents=True)
    outside.mkdir()
    (corpus / "report.txt").write_text("A report.")
    (corpus / "sub" / "annex.txt").write_text("An annex.")
    (outside / "secret.txt").write_text("Not a report.")
    (corpus / "x.txt").symlink_to(outside / "secret.txt")  # a file leading out
    (corpus / "shared").symlink_to(outside, target_is_directory=True)  # a folder leading out
    (corpus / "sub" / "deeper.txt").symlink_to(outside / "secret.txt")  # out, from a subfolder
    (corpus / "alias.txt").symlink_to(corpus / "report.txt")  # stays inside
    (corpus / "again").symlink_to(corpus / "sub", target_is_directory=True)  # stays inside
    return corpus


def test_discovery_never_follows_a_link(tmp_path):
    from advisor.corpus import discover_files

    corpus = _links_around(tmp_path)
    assert [p.relative_to(corpus).as_posix() for p in discover_files([corpus])] == [
        "report.txt",
        "sub/annex.txt",
    ]


def test_links_are_passed_over_with_a_reason_that_says_where_they_lead(tmp_path):
    from advisor.corpus import find_reports

    corpus = _links_around(tmp_path)
    found = find_reports([corpus])
    reasons = {p.relative_to(corpus).as_posix(): reason for p, reason in found.skipped}
    assert set(reasons) == {"x.txt", "shared", "sub/deeper.txt", "alias.txt", "again"}
    for name in ("x.txt", "shared", "sub/deeper.txt"):
        assert "leads outside the corpus folder" in reasons[name]
    for name in ("alias.txt", "again"):
        assert "symbolic link" in reasons[name] and "outside" not in reasons[name]


LONG = "Spread needs evidence. " * 70  # 1,610 characters


@pytest.mark.parametrize(
    "name,content",
    [
        ("long.txt", LONG.encode()),
        ("long.html", f"<html><body><p>{LONG}</p></body></html>".encode()),
        ("long.pdf", _text_pdf(LONG)),
    ],
)
def test_a_file_over_the_character_cap_says_its_size_the_cap_and_the_setting(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(UnreadableFileError, match=r"1,6\d\d characters.*1,000.*ADVISOR_MAX_FILE_CHARS"):
        load_document(path, _info(path), max_chars=1000)
    assert LONG.strip() in load_document(path, _info(path), max_chars=2000).text


def test_a_text_file_far_over_the_cap_is_refused_without_being_read(tmp_path, monkeypatch):
    path = tmp_path / "huge.txt"
    with path.open("wb") as f:
        f.truncate(50_000_000)  # the probe's size, sparse on disk
    monkeypatch.setattr(Path, "read_bytes", lambda self: pytest.fail(f"{self.name} was read"))
    with pytest.raises(UnreadableFileError, match=r"50,000,000 bytes.*2,000,000.*ADVISOR_MAX_FILE_CHARS"):
        load_document(path, _info(path), max_chars=2_000_000)


@pytest.mark.parametrize("char", ["é", "\N{GRINNING FACE}"])  # two and four bytes a character
def test_characters_not_bytes_are_counted(tmp_path, char):
    path = tmp_path / "wide.txt"
    path.write_text(char * 990, encoding="utf-8")
    assert len(load_document(path, _info(path), max_chars=1000).text) == 990
