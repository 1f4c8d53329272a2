import json

import numpy as np
import pytest
import torch

from ganref import report


def test_record_writes_json_atomically(tmp_path):
    path = tmp_path / "out" / "01_x.json"
    r = report.Report("01_x", "X", "smoke", "cpu", 3, path)
    r.record(a=1.5, b=np.float32(2.0), c=torch.tensor([1.0, 2.0]), d={"k": np.int64(4)})
    r.reference("a", 1.4, "Paper 2020, Table 1")
    data = report.load(path)
    assert data["results"] == {"a": 1.5, "b": 2.0, "c": [1.0, 2.0], "d": {"k": 4}}
    assert data["references"] == [{"key": "a", "value": 1.4, "source": "Paper 2020, Table 1", "note": ""}]
    assert data["profile"] == "smoke" and data["seed"] == 3 and data["chapter"] == "01_x"
    assert [p.name for p in path.parent.iterdir()] == ["01_x.json"]  # no temp file left behind


def test_default_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = report.Report("02_y", "Y", "cpu", "cpu", 0)
    r.record(z=1)
    assert json.loads((tmp_path / "runs" / "cpu" / "02_y.json").read_text())["results"] == {"z": 1}


def test_non_finite_and_odd_values_are_refused(tmp_path):
    r = report.Report("01_x", "X", "smoke", "cpu", 0, tmp_path / "r.json")
    with pytest.raises(ValueError, match="result 'loss' is nan"):
        r.record(loss=float("nan"))
    with pytest.raises(ValueError, match=r"result 'l\[1\]' is inf"):
        r.record(l=[1.0, float("inf")])
    with pytest.raises(ValueError, match="has type object"):
        r.record(o=object())


def test_load_refuses_other_json(tmp_path):
    p = tmp_path / "x.json"
    p.write_text("[1, 2]")
    with pytest.raises(ValueError, match="not a ganref results file"):
        report.load(p)
