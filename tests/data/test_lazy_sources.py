"""A lazy corpus's handle belongs to the process that opened it; its items stream in file order."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest

from lossbench.data.sources.lazy import PerProcess
from lossbench.data.sources.resolve import SubsetDocs
from lossbench.data.sources.textfile import TextFile

OPENED: list[int] = []


def open_counter() -> list[int]:
    OPENED.append(os.getpid())
    return [len(OPENED)]


def test_a_handle_is_opened_once_per_process_and_never_pickled() -> None:
    OPENED.clear()
    handle = PerProcess(open_counter)
    first = handle.get()
    assert handle.get() is first and len(OPENED) == 1
    copy = pickle.loads(pickle.dumps(handle))
    assert copy.__dict__["_opened"] is None  # the parent's handle did not travel
    assert copy.get() == [2]  # opened again, on first use


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_opens_its_own_file(tmp_path: Path) -> None:
    path = tmp_path / "corpus.tsv"
    path.write_text("".join(f"d{i}\ttext {i}\n" for i in range(20)))
    texts = TextFile(path)
    assert texts["d3"] == "text 3"  # the parent's handle is open now
    parent_handle = texts._file.get()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: a lookup must not move the parent's file position
        ok = texts["d15"] == "text 15" and texts._file.get() is not parent_handle
        os.write(write, b"1" if ok else b"0")
        os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 1) == b"1"
    assert texts._file.get() is parent_handle and texts["d4"] == "text 4"


def test_a_pickled_text_file_and_subset_read_like_the_original(tmp_path: Path) -> None:
    path = tmp_path / "corpus.tsv"
    path.write_text("d2\ttwo\nd1\tone\n\nd3\tthree\n")
    texts = TextFile(path)
    assert texts["d1"] == "one"
    copy = pickle.loads(pickle.dumps(texts))
    assert list(copy.items()) == [("d2", "two"), ("d1", "one"), ("d3", "three")]  # file order
    subset = SubsetDocs(copy, ["d3", "d2", "d3"])
    assert list(subset.items()) == [("d3", "three"), ("d2", "two")]
    assert dict(subset) == {"d3": "three", "d2": "two"} and "d1" not in subset
