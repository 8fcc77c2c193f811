"""Rebuild the shipped English corpus from its registry package.

Source: Debian's `r-cran-janeaustenr` (MIT; the six novels themselves are in the public domain).
    apt-get download r-cran-janeaustenr && python scripts/build_corpus.py r-cran-janeaustenr_*.deb

Needs `rdata` (pip install rdata), which parses R's serialization format as data (no code runs).
The output is deterministic: the same package gives byte-identical files.
"""

from __future__ import annotations

import gzip
import hashlib
import re
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

import rdata

OUT = Path(__file__).resolve().parent.parent / "src/mindset/data/corpus/austen"
DATA_DIR = "usr/lib/R/site-library/janeaustenr/data"
# (variable in the R package, title) in publication order
NOVELS = [
    ("sensesensibility", "Sense and Sensibility"),
    ("prideprejudice", "Pride and Prejudice"),
    ("mansfieldpark", "Mansfield Park"),
    ("emma", "Emma"),
    ("northangerabbey", "Northanger Abbey"),
    ("persuasion", "Persuasion"),
]
# Every VALID_EVERY-th chapter of each novel (offset VALID_OFFSET) is held out: whole chapters, so
# no paragraph is split between the two sides, and every novel is on both.
VALID_EVERY, VALID_OFFSET = 48, 11
CHAPTER = re.compile(r"^(CHAPTER|Chapter)\s+([IVXLC]+|\d+)\.?\s*$")


def read_r_lazyload(data_dir: Path) -> dict[str, list[str]]:
    index = rdata.conversion.convert(
        rdata.parser.parse_data(gzip.decompress((data_dir / "Rdata.rdx").read_bytes()))
    )
    blob = (data_dir / "Rdata.rdb").read_bytes()
    novels = {}
    for name, (offset, length) in index["variables"].items():
        # each record: 4-byte big-endian length, then a zlib stream of one serialized R object
        raw = zlib.decompress(blob[int(offset) + 4 : int(offset) + int(length)])
        lines = rdata.conversion.convert(rdata.parser.parse_data(raw))
        novels[str(name)] = ["" if not isinstance(x, str) else str(x) for x in lines]
    return novels


def clean_paragraph(lines: list[str]) -> str:
    text = " ".join(line.strip() for line in lines)
    text = re.sub(r"_([^_]+)_", r"\1", text)  # _emphasis_ marks of the plain-text edition
    return re.sub(r"\s+", " ", text).strip()


def chapters(lines: list[str]) -> list[list[str]]:
    """Split a novel's lines into chapters of cleaned paragraphs; front matter and headings dropped."""
    result: list[list[str]] = []
    current: list[str] | None = None
    para: list[str] = []

    def flush() -> None:
        if para and current is not None:
            text = clean_paragraph(para)
            # volume headings and "THE END" are not prose
            if text and not re.fullmatch(r"(VOLUME [IVX]+|THE END|FINIS)\.?", text):
                current.append(text)
        para.clear()

    for line in lines:
        if CHAPTER.match(line.strip()):
            flush()
            current = []
            result.append(current)
        elif not line.strip():
            flush()
        else:
            para.append(line)
    flush()
    return [c for c in result if c]


def main(deb: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["dpkg-deb", "-x", deb, tmp], check=True)
        novels = read_r_lazyload(Path(tmp) / DATA_DIR)
    splits: dict[str, list[str]] = {"train": [], "valid": []}
    for name, _title in NOVELS:
        for i, chapter in enumerate(chapters(novels[name])):
            split = "valid" if i % VALID_EVERY == VALID_OFFSET else "train"
            splits[split].append("\n\n".join(chapter))
    OUT.mkdir(parents=True, exist_ok=True)
    for split, docs in splits.items():
        text = "\n\n".join(docs) + "\n"
        # mtime=0 keeps the gzip bytes deterministic
        with gzip.GzipFile(OUT / f"{split}.txt.gz", "wb", mtime=0) as f:
            f.write(text.encode("utf-8"))
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        print(f"{split}: {len(docs)} chapters, {len(text):,} characters, sha256 {digest}")


if __name__ == "__main__":
    main(sys.argv[1])
