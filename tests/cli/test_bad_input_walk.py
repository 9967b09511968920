"""Every command, walked with bad input: the documented exit code, one precise message that
names the offending thing, no traceback, nothing written where a command refused.

The commands are read from the typer app itself, so a new command fails
``test_every_command_is_in_the_table`` until it gets a row below. Cases built from each
command's parameters, for every command that has them:

* an unknown option, and the required arguments left out (exit 2, the option or argument
  named);
* ``--data-dir`` naming a file (exit 2, the path named);
* ``--filter`` that is not JSON, that is JSON but not a filter (exit 2, the JSON path), or that
  nests too deep to decode (exit 2);
* for commands that read an index, a ``--data-dir`` that does not exist (exit 1, the path
  named, nothing created).

Then the rows' own cases: a JSONL with a bad line (``file:line``), a missing dataset, a bad
option value, a port in use. No case may load a model except where its row says so (one
ingest, which has a good line to index): the model classes refuse to load for the others, so
a command that would load one before refusing fails here, fast.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import typer.main
from cli_helpers import braid, copy_data_dir, make_runner
from typer.core import TyperGroup

from braid.cli.app import app
from braid.cli.common import ExitCode

USAGE, FAILED = int(ExitCode.USAGE), int(ExitCode.FAILED)
BOX = str.maketrans("", "", "│╭╮╰╯─")  # rich's error box, around click's usage errors


@dataclass(frozen=True)
class Case:
    """One bad command line: its arguments after the command's name, what must come of it.

    Placeholders in ``args`` and ``says``, filled in per test: ``{tmp}`` a fresh folder,
    ``{missing}`` a path that does not exist, ``{file}`` a file, ``{bad_jsonl}`` a JSONL file
    whose line 2 is broken, ``{dataset}`` a one-query BEIR folder, ``{busy_port}`` a port
    something listens on, ``{index}`` a copy of the sample corpus's data dir.
    """

    name: str
    args: tuple[str, ...]
    code: int
    says: tuple[str, ...]
    writes: bool = False  # a writer that did its work for the good part of the input
    loads_model: bool = False
    xfail: str | None = None


@dataclass(frozen=True)
class Row:
    """A command's entry: valid-looking required arguments (to get past click to the
    checks), whether it reads an existing index, and its own bad inputs."""

    fill: tuple[str, ...] = ()
    reads_index: bool = False
    cases: tuple[Case, ...] = field(default_factory=tuple)
    fill_with_filter: tuple[str, ...] | None = None  # for the --filter cases (default: fill)


def _case(
    name: str,
    args: str | tuple[str, ...],
    code: int,
    *says: str,
    writes: bool = False,
    loads_model: bool = False,
    xfail: str | None = None,
) -> Case:
    """A case; ``args`` as one string when no argument holds a space."""
    argv = tuple(args.split()) if isinstance(args, str) else args
    return Case(name, argv, code, says, writes, loads_model, xfail)


NO_DATASET = "no dataset folder 'nosuch' (looked for corpus.jsonl in nosuch"

TABLE: dict[str, Row] = {
    "ingest": Row(
        fill=("{tmp}",),
        cases=(
            _case(
                "a bad JSONL line",
                "{bad_jsonl} --data-dir {tmp}/index",
                FAILED,
                "{bad_jsonl}:2: malformed JSON",
                writes=True,
                loads_model=True,
            ),
            _case(
                "a missing input",
                "{missing}/docs.jsonl --data-dir {tmp}/index",
                FAILED,
                "{missing}/docs.jsonl: no such file or directory (nothing ingested)",
            ),
            _case(
                "batch size 0", "{tmp} --batch-size 0", USAGE, "Invalid value for '--batch-size'"
            ),
        ),
    ),
    "search": Row(
        fill=("anything",),
        reads_index=True,
        cases=(
            _case(
                "an empty query",
                ("", "--data-dir", "{index}"),
                USAGE,
                "error: query is empty",
            ),
            _case(
                "a forged cursor",
                "anything --cursor garbage --data-dir {index}",
                USAGE,
                "cursor is not one this server made",
            ),
            _case(
                "a facet that is no field name",
                "anything --facet no-such --data-dir {index}",
                USAGE,
                "facet field 'no-such' is not a metadata key",
            ),
            _case(
                "an unknown grouping",
                "anything --group-by page --data-dir {missing}",
                USAGE,
                "--group-by must be document or chunk",
            ),
            _case(
                "top-k 0",
                "anything --top-k 0 --data-dir {missing}",
                USAGE,
                "Invalid value for '--top-k'",
            ),
            _case(
                "an unknown mode",
                "anything --mode fuzzy --data-dir {missing}",
                USAGE,
                "--mode must be hybrid, dense or bm25",
            ),
        ),
    ),
    "delete": Row(
        fill=("some-doc",),
        fill_with_filter=(),  # ids or a filter, not both
        reads_index=True,
        cases=(
            _case(
                "neither ids nor filter",
                "--data-dir {missing}",
                USAGE,
                "give document ids or --filter",
            ),
            _case(
                "ids and a filter",
                ("some-doc", "--filter", '{"a": 1}', "--data-dir", "{missing}"),
                USAGE,
                "give document ids or --filter (one of them)",
            ),
        ),
    ),
    "stats": Row(reads_index=True),
    "optimize": Row(reads_index=True),
    "move-sparse": Row(
        fill=("--to", "qdrant"),
        reads_index=True,
        cases=(
            _case(
                "to where it is",
                "--to tantivy --data-dir {index}",
                FAILED,
                "BM25 already lives in 'tantivy'",
            ),
            _case(
                "an unknown backend",
                "--to elastic --data-dir {missing}",
                USAGE,
                "--to must be tantivy or qdrant",
            ),
        ),
    ),
    "reindex": Row(
        fill=("--model", "some-model"),
        reads_index=True,
        cases=(
            _case(
                "a model that is nowhere",
                "--model {missing}/model --data-dir {index}",
                FAILED,
                "cannot load embedding model '{missing}/model' (not a folder, and not in the "
                "local Hugging Face cache",
                loads_model=True,  # what refuses it is the loader, offline
            ),
        ),
    ),
    "collections": Row(reads_index=True),
    "promote": Row(
        fill=("braid_chunks",),
        reads_index=True,
        cases=(
            _case(
                "an unknown collection",
                "nosuch --data-dir {index}",
                FAILED,
                "'nosuch' is not one of",
            ),
        ),
    ),
    "drop": Row(fill=("braid_chunks",), reads_index=True),
    "serve": Row(
        cases=(
            _case("port 0", "--port 0 --data-dir {missing}", USAGE, "Invalid value for '--port'"),
            _case(
                "workers without readers",
                "--workers 2 --data-dir {missing}",
                USAGE,
                "--workers > 1 needs api.role=reader",
            ),
            _case(
                "a port in use",
                "--port {busy_port} --data-dir {missing}",
                FAILED,
                "port {busy_port} on 127.0.0.1 is in use",
            ),
        ),
    ),
    "worker": Row(
        cases=(
            _case(
                "poll 0", "--poll-s 0 --data-dir {missing}", USAGE, "Invalid value for '--poll-s'"
            ),
        ),
    ),
    "eval run": Row(
        fill=("{dataset}",),
        cases=(
            _case("a missing dataset", "nosuch --data-dir {missing}", USAGE, NO_DATASET),
            _case("limit 0", "nosuch --limit 0", USAGE, "Invalid value for '--limit'"),
        ),
    ),
    "eval suite": Row(
        fill=("{tmp}",),
        cases=(
            _case(
                "a missing folder",
                "{missing} --data-dir {missing}",
                USAGE,
                "{missing}: not a folder of dataset folders",
            ),
            _case(
                "a file",
                "{file} --data-dir {missing}",
                USAGE,
                "{file}: not a folder of dataset folders",
            ),
        ),
    ),
    "eval sweep": Row(
        fill=("{dataset}",),
        cases=(_case("a missing dataset", "nosuch --data-dir {missing}", USAGE, NO_DATASET),),
    ),
    "eval report": Row(
        fill=("{dataset}",),
        cases=(
            _case(
                "nothing to report",
                "nosuch --data-dir {missing}",
                FAILED,
                "nothing to report in {missing}/eval/nosuch/results",
            ),
        ),
    ),
    "eval perturb": Row(
        fill=("{dataset}",),
        cases=(_case("a missing dataset", "nosuch --data-dir {missing}", USAGE, NO_DATASET),),
    ),
    "eval compare": Row(
        fill=("{dataset}",),
        cases=(_case("a missing dataset", "nosuch --data-dir {missing}", USAGE, NO_DATASET),),
    ),
    "eval tradeoffs": Row(
        fill=("{dataset}",),
        cases=(
            _case("a missing dataset", "nosuch --data-dir {missing}", USAGE, NO_DATASET),
            _case(
                "dimensions that are not numbers",
                "{dataset} --dims 384,abc --data-dir {missing}",
                USAGE,
                "--dims takes comma-separated positive integers, got '384,abc'",
            ),
        ),
    ),
    "train reranker": Row(
        fill=("--dataset", "{dataset}"),
        cases=(
            _case("a missing dataset", "--dataset nosuch --data-dir {missing}", USAGE, NO_DATASET),
        ),
    ),
    "train embedder": Row(
        cases=(
            _case("a missing dataset", "--dataset nosuch --data-dir {missing}", USAGE, NO_DATASET),
            _case(
                "an unknown loss",
                "--loss hinge --data-dir {missing}",
                USAGE,
                "Invalid value for --loss: one of mnrl",
            ),
            _case(
                "no dataset and no index",
                "--data-dir {missing}",
                FAILED,
                "{missing} does not exist: ingest into it first",
            ),
        ),
    ),
    "train pca": Row(
        fill=("--dims", "8"),
        reads_index=True,
        cases=(
            _case("--dims 0", "--dims 0 --data-dir {missing}", USAGE, "Invalid value for '--dims'"),
            _case(
                "as many dimensions as the model",
                "--dims 384 --data-dir {index}",
                USAGE,
                "--dims must lie in 1..383 (the index's model has 384)",
            ),
            _case(
                "an --out that exists",
                "--dims 8 --out {file} --data-dir {index}",
                USAGE,
                "{file} exists: give a new --out",
            ),
        ),
    ),
    "bench query": Row(
        cases=(
            _case(
                "too few docs", "--docs 0 --data-dir {missing}", USAGE, "Invalid value for '--docs'"
            ),
            _case(
                "a missing corpus",
                "--corpus {missing} --data-dir {tmp}/bench",
                FAILED,
                "{missing}",
            ),
        ),
    ),
    "bench ingest": Row(
        cases=(
            _case(
                "batch size 0",
                "--batch-size 0 --data-dir {missing}",
                USAGE,
                "Invalid value for '--batch-size'",
            ),
            _case(
                "a missing corpus",
                "--corpus {missing} --data-dir {tmp}/bench",
                FAILED,
                "{missing}",
            ),
        ),
    ),
    "bench api": Row(
        cases=(
            _case("no clients", "--clients 0", USAGE, "--clients takes counts from 1 to 64"),
            _case("a list with a bad count", "--clients 1,x", USAGE, "not '1,x'"),
            _case("a missing corpus", "--corpus {missing}", FAILED, "{missing}"),
        ),
    ),
    "bench rerank": Row(
        cases=(
            _case("no pairs", "--pairs 0", USAGE, "Invalid value for '--pairs'"),
            _case("an unknown backend", "--backends torch,tpu", USAGE, "['tpu']"),
            _case("a missing corpus", "--corpus {missing}", FAILED, "{missing}"),
        ),
    ),
    "bench sparse": Row(
        cases=(
            _case(
                "too few chunks",
                "--chunks 0 --data-dir {missing}",
                USAGE,
                "Invalid value for '--chunks'",
            ),
            _case(
                "a missing corpus",
                "--corpus {missing} --data-dir {tmp}/bench",
                FAILED,
                "{missing}",
            ),
        ),
    ),
}


def leaf_commands(group: TyperGroup, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """The command path of every command and subcommand of the app (groups walked)."""
    for name, command in group.commands.items():
        if isinstance(command, TyperGroup):
            yield from leaf_commands(command, (*prefix, name))
        else:
            yield (*prefix, name)


ROOT = typer.main.get_command(app)
assert isinstance(ROOT, TyperGroup)
COMMANDS = {" ".join(path): path for path in leaf_commands(ROOT)}


def _command(name: str) -> typer.core.TyperCommand:
    node: object = ROOT
    for part in COMMANDS[name]:
        node = node.commands[part]  # type: ignore[attr-defined]
    return node  # type: ignore[return-value]


def generated_cases(name: str, row: Row) -> Iterator[Case]:
    """The cases every command with such a parameter gets (see the module docstring)."""
    params = {p.name: p for p in _command(name).params}
    yield _case(
        "an unknown option",
        (*row.fill, "--no-such-option"),
        USAGE,
        "No such option: --no-such-option",
    )
    required = [p for p in params.values() if p.required]
    if required:
        first = required[0]
        label = (
            f"argument '{first.name}'"
            if not first.opts[0].startswith("-")
            else f"option '{first.opts[0]}'"
        )
        yield _case("required parameters missing", (), USAGE, f"Missing {label}")
    if "data_dir" in params:
        yield _case(
            "the data dir is a file",
            (*row.fill, "--data-dir", "{file}"),
            USAGE,
            "the data dir {file} is a file, not a folder",
        )
    if row.reads_index:
        yield _case(
            "the data dir does not exist",
            (*row.fill, "--data-dir", "{missing}"),
            FAILED,
            "{missing} does not exist: ingest into it first",
        )
    if "filter_json" in params:
        given = row.fill if row.fill_with_filter is None else row.fill_with_filter
        where = ("--data-dir", "{missing}")  # the filter is refused before the data dir
        yield _case(
            "--filter not JSON",
            (*given, "--filter", "{year: 2020", *where),
            USAGE,
            "--filter is not valid JSON: Expecting property name enclosed in double quotes",
        )
        yield _case(
            "--filter not a filter",
            (*given, "--filter", '{"year": {"$gte": [2020]}}', *where),
            USAGE,
            "--filter: $.year.$gte: range bounds must be numbers or ISO-8601 dates",
        )
        yield _case(
            "--filter too deep for JSON",
            (*given, "--filter", "[" * 5000 + "]" * 5000, *where),
            USAGE,
            "--filter is nested too deeply to read",
        )


ALL_CASES = [
    pytest.param(
        name,
        case,
        id=f"{name}: {case.name}",
        marks=[pytest.mark.xfail(strict=True, reason=case.xfail)] if case.xfail else [],
    )
    for name in COMMANDS
    for row in [TABLE.get(name, Row())]  # a command without a row still gets the generic ones
    for case in (*generated_cases(name, row), *row.cases)
]


def test_every_command_is_in_the_table() -> None:
    assert set(COMMANDS) == set(TABLE), (
        f"commands without a row: {sorted(set(COMMANDS) - set(TABLE))}; "
        f"rows without a command: {sorted(set(TABLE) - set(COMMANDS))}"
    )


def test_every_command_gets_cases() -> None:
    counts = {name: sum(1 for p in ALL_CASES if p.values[0] == name) for name in COMMANDS}
    assert min(counts.values()) >= 2, counts
    assert len(ALL_CASES) >= 80


def said(text: str) -> str:
    """stderr without rich's box and without any whitespace: the console wraps at 80
    columns, and folds a long path anywhere, so messages are compared without spaces."""
    return "".join(text.translate(BOX).split())


def files_under(folder: Path) -> set[tuple[str, int]]:
    return {(str(p.relative_to(folder)), p.stat().st_size) for p in folder.rglob("*")}


def make_dataset(folder: Path) -> Path:
    """A BEIR folder with one document, one query and its judgement."""
    (folder / "qrels").mkdir(parents=True)
    doc = {"_id": "d1", "title": "", "text": "saturn has rings"}
    (folder / "corpus.jsonl").write_text(json.dumps(doc) + "\n")
    (folder / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "rings"}) + "\n")
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    return folder


class ModelLoadedError(BaseException):
    """Raised by the model classes in these tests: a BaseException, so that no handler
    turns it into a message and the test names the command that loaded a model."""


@pytest.fixture(scope="module")
def model_classes() -> list[type]:
    from sentence_transformers import CrossEncoder, SentenceTransformer

    return [SentenceTransformer, CrossEncoder]


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.mark.parametrize(("name", "case"), ALL_CASES)
def test_bad_input(
    name: str,
    case: Case,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
    model_classes: list[type],
    busy_port: int,
) -> None:
    tmp = tmp_path / "work"
    tmp.mkdir()
    (tmp / "a-file").write_text("not a data dir\n")
    good = json.dumps({"id": "fine", "text": "a good line before the bad one"})
    (tmp / "bad.jsonl").write_text(f'{good}\n{{"id": "broken", "text": \n')
    values = {
        "tmp": str(tmp),
        "missing": str(tmp / "missing"),
        "file": str(tmp / "a-file"),
        "bad_jsonl": str(tmp / "bad.jsonl"),
        "dataset": str(make_dataset(tmp / "dataset")),
        "busy_port": str(busy_port),
        "index": str(tmp / "index"),
    }
    if any("{index}" in arg for arg in case.args):
        # The sample corpus, ingested once for the CLI tests; a copy, as it may be opened.
        sample: Path = request.getfixturevalue("sample_data")[0]
        copy_data_dir(sample, tmp / "index")

    def fill(text: str) -> str:
        for key, value in values.items():
            text = text.replace("{" + key + "}", value)
        return text

    if not case.loads_model:
        for cls in model_classes:

            def refuse(self: object, *args: object, _cls: str = cls.__name__, **kw: object) -> None:
                raise ModelLoadedError(f"`braid {name}` loaded a {_cls} before refusing")

            monkeypatch.setattr(cls, "__init__", refuse)
    monkeypatch.chdir(tmp)  # the default ./braid-data, and anything else relative, land here
    before = files_under(tmp)
    runner = make_runner(BRAID_DATA_DIR=str(tmp / "default-data"))

    result = braid(runner, *COMMANDS[name], *(fill(a) for a in case.args))

    message = said(result.stderr)
    assert result.exit_code == case.code, result.stderr
    for expected in case.says:
        assert said(fill(expected)) in message, result.stderr
    assert "Traceback" not in result.stderr
    assert "internalerror" not in message
    if not case.writes:
        # One message: an `error:` line, or click's usage error (in a box titled Error).
        assert message.count("error:") + message.count("Error") == 1, result.stderr
        # Qdrant Edge rewrites its config and journals whenever a shard is opened to write:
        # the index's other files (ledger, Tantivy, format) must be as they were.
        assert _kept(files_under(tmp)) == _kept(before), "a refused command changed files"


def _kept(files: set[tuple[str, int]]) -> set[tuple[str, int]]:
    return {(path, size) for path, size in files if not path.startswith("index/dense/")}
