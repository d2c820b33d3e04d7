"""Model files: round trips, byte-stable writes, atomic saves, and refusal of crafted files."""

import hashlib
import io
import json
import os
import pickle
import stat
import zipfile

import numpy as np
import pandas as pd
import pytest

import softreg
from softreg import _model_io
from softreg._model_io import (
    FORMAT_VERSION,
    ModelFileError,
    load_model,
    read_model_file,
    save_model,
)


def blobs(seed=0, n_samples=60, n_features=3, labels=("a", "b", "c")):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3.0, size=(len(labels), n_features))
    codes = rng.integers(0, len(labels), size=n_samples)
    X = centres[codes] + rng.normal(size=(n_samples, n_features))
    return X, np.asarray(labels)[codes]


@pytest.fixture(scope="module")
def fitted():
    X, y = blobs()
    return softreg.SoftmaxRegression(alpha=0.1).fit(X, y), X


@pytest.fixture
def model_path(tmp_path, fitted):
    path = tmp_path / "model.softreg"
    save_model(fitted[0], path)
    return path


def members(path):
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def rewrite(path, members_, *, header=None, fix_checksums=True):
    """Write a crafted model file: given members, optionally a new header with fresh SHA-256s."""
    header = json.loads(members_["header.json"]) if header is None else header
    if fix_checksums:
        for name, info in header["arrays"].items():
            if f"{name}.npy" in members_:
                info["sha256"] = hashlib.sha256(members_[f"{name}.npy"]).hexdigest()
    members_ = dict(members_, **{"header.json": json.dumps(header).encode()})
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members_.items():
            archive.writestr(name, data)


def npy(array, allow_pickle=False):
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


class CreatesFileWhenUnpickled:
    """Unpickling this calls open(marker, "w"): proof that code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


# ------------------------------------------------------------------------------------------
# round trips


@pytest.mark.parametrize(
    "labels",
    [("a", "bb", "ccc"), (3, 7, 11), (-1.0, 0.0, 2.0), (False, True)],
    ids=["str", "int", "float", "bool"],
)
def test_round_trip_predicts_identically(tmp_path, labels):
    X, y = blobs(1, labels=labels)
    model = softreg.SoftmaxRegression(alpha=0.05).fit(X, y)
    path = tmp_path / "m.softreg"
    save_model(model, path)
    loaded = load_model(path)
    assert type(loaded) is softreg.SoftmaxRegression
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    np.testing.assert_array_equal(loaded.predict_log_proba(X), model.predict_log_proba(X))
    assert loaded.classes_.dtype == model.classes_.dtype or (
        model.classes_.dtype.kind == "O" and loaded.classes_.dtype.kind == "U"
    )
    np.testing.assert_array_equal(loaded.classes_, model.classes_)
    for name in ("coef_", "intercept_"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(model, name))
        assert getattr(loaded, name).dtype == getattr(model, name).dtype
    for name in ("n_iter_", "objective_", "optimality_gap_bound_", "converged_", "solver_"):
        assert getattr(loaded, name) == getattr(model, name), name
    assert loaded.n_features_in_ == model.n_features_in_
    assert loaded.history_.keys() == model.history_.keys()
    for key, values in model.history_.items():
        np.testing.assert_array_equal(loaded.history_[key], values)
    assert loaded.get_params() == model.get_params()


@pytest.mark.parametrize("n_targets", [None, 2])
def test_linear_regression_round_trip(tmp_path, n_targets):
    rng = np.random.default_rng(8)
    X = rng.normal(size=(40, 3))
    coef = rng.normal(size=(3,) if n_targets is None else (3, n_targets))
    y = X @ coef + 0.1 * rng.normal(size=(40,) if n_targets is None else (40, n_targets))
    model = softreg.LinearRegression(alpha=0.01).fit(X, y)
    save_model(model, tmp_path / "m.softreg")
    model_file = read_model_file(tmp_path / "m.softreg")
    assert model_file.header["estimator"] == "LinearRegression"
    assert model_file.header["classes"] is None
    loaded = model_file.estimator
    assert type(loaded) is softreg.LinearRegression
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    assert np.shape(loaded.intercept_) == np.shape(model.intercept_)
    assert loaded.get_params() == model.get_params()


def test_float32_model_keeps_its_dtype(tmp_path):
    X, y = blobs(2)
    # tol=1e-4: float32 arithmetic cannot certify the default relative gap of 1e-6.
    model = softreg.SoftmaxRegression(alpha=0.1, tol=1e-4).fit(X.astype(np.float32), y)
    save_model(model, tmp_path / "m.softreg")
    loaded = load_model(tmp_path / "m.softreg")
    assert loaded.coef_.dtype == np.float32
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


def test_feature_names_round_trip(tmp_path):
    X, y = blobs(3)
    frame = pd.DataFrame(X, columns=["height", "width", "depth"])
    model = softreg.SoftmaxRegression(alpha=0.1).fit(frame, y)
    save_model(model, tmp_path / "m.softreg")
    model_file = read_model_file(tmp_path / "m.softreg")
    assert model_file.header["feature_names"] == ["height", "width", "depth"]
    assert model_file.estimator.feature_names_in_.tolist() == ["height", "width", "depth"]
    np.testing.assert_array_equal(model_file.estimator.predict(frame), model.predict(frame))


@pytest.mark.filterwarnings("ignore::softreg.SeparableDataWarning")
def test_hyper_parameters_round_trip(tmp_path):
    X, y = blobs(4, labels=(1, 2, 3))
    model = softreg.SoftmaxRegression(
        alpha=0.0, solver="lbfgs", tol=1e-6, max_iter=50, class_weight={1: 2.0, 3: 0.5}
    ).fit(X, y)
    save_model(model, tmp_path / "m.softreg")
    header = read_model_file(tmp_path / "m.softreg").header
    # JSON has no infinity: a gap bound without a penalty is written as the string "inf".
    assert header["training"]["optimality_gap_bound"] == "inf"
    assert header["params"]["class_weight"] == {"mapping": [[1, 2.0], [3, 0.5]]}
    loaded = load_model(tmp_path / "m.softreg")
    assert loaded.optimality_gap_bound_ == np.inf
    assert loaded.get_params()["class_weight"] == {1: 2.0, 3: 0.5}
    assert loaded.get_params() == model.get_params()


def test_callback_is_not_saved(tmp_path):
    X, y = blobs(5)
    seen = []
    model = softreg.SoftmaxRegression(alpha=0.1, callback=seen.append).fit(X, y)
    assert seen
    save_model(model, tmp_path / "m.softreg")
    assert read_model_file(tmp_path / "m.softreg").header["params"]["callback"] is None
    assert load_model(tmp_path / "m.softreg").callback is None


def test_metadata_is_kept(tmp_path, fitted):
    save_model(fitted[0], tmp_path / "m.softreg", metadata={"target_column": "y", "n": 3})
    assert read_model_file(tmp_path / "m.softreg").header["metadata"] == {
        "target_column": "y",
        "n": 3,
    }


def test_saving_twice_gives_identical_bytes(tmp_path, fitted):
    save_model(fitted[0], tmp_path / "a.softreg")
    save_model(fitted[0], tmp_path / "b.softreg")
    assert (tmp_path / "a.softreg").read_bytes() == (tmp_path / "b.softreg").read_bytes()


def test_file_layout_is_plain_numpy(model_path, fitted):
    content = members(model_path)
    assert next(iter(content)) == "header.json"
    header = json.loads(content["header.json"])
    assert header["format"] == "softreg-model" and header["format_version"] == FORMAT_VERSION
    assert header["softreg_version"] == softreg.__version__
    assert header["estimator"] == "SoftmaxRegression"
    assert set(content) == {"header.json"} | {f"{name}.npy" for name in header["arrays"]}
    assert {"coef_", "intercept_", "classes_", "history_objective"} <= set(header["arrays"])
    for name, info in header["arrays"].items():
        assert hashlib.sha256(content[f"{name}.npy"]).hexdigest() == info["sha256"]
    # Readable without softreg, and without pickle.
    with np.load(model_path, allow_pickle=False) as archive:
        np.testing.assert_array_equal(archive["coef_"], fitted[0].coef_)
        assert archive["classes_"].dtype.kind == "U"


def test_estimator_save_writes_the_same_file(tmp_path, fitted):
    fitted[0].save(tmp_path / "method.softreg")
    save_model(fitted[0], tmp_path / "function.softreg")
    assert (tmp_path / "method.softreg").read_bytes() == (
        tmp_path / "function.softreg"
    ).read_bytes()


# ------------------------------------------------------------------------------------------
# what cannot be saved


def test_unfitted_estimator_cannot_be_saved(tmp_path):
    with pytest.raises(ValueError, match=r"`estimator` must be fitted before saving"):
        save_model(softreg.SoftmaxRegression(), tmp_path / "m.softreg")
    assert not (tmp_path / "m.softreg").exists()


def test_foreign_estimator_cannot_be_saved(tmp_path):
    from sklearn.linear_model import LogisticRegression

    X, y = blobs(6)
    with pytest.raises(
        ValueError,
        match=r"`estimator` must be one of SoftmaxRegression, LinearRegression; "
        r"got LogisticRegression",
    ):
        save_model(LogisticRegression().fit(X, y), tmp_path / "m.softreg")


def test_unsavable_metadata(tmp_path, fitted):
    with pytest.raises(ValueError, match=r"cannot save metadata 'f': a model file holds numbers"):
        save_model(fitted[0], tmp_path / "m.softreg", metadata={"f": print})
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------------------------------
# atomic writes


def test_interrupted_save_leaves_no_file(tmp_path, fitted, monkeypatch):
    calls = []

    def fail_on_third_member(archive, name, data):
        calls.append(name)
        if len(calls) == 3:
            raise OSError("disk full")
        real_write_member(archive, name, data)

    real_write_member = _model_io._write_member
    monkeypatch.setattr(_model_io, "_write_member", fail_on_third_member)
    with pytest.raises(OSError, match="disk full"):
        save_model(fitted[0], tmp_path / "m.softreg")
    assert len(calls) == 3
    assert os.listdir(tmp_path) == []


def test_interrupted_save_keeps_the_old_file(model_path, monkeypatch):
    before = model_path.read_bytes()

    def interrupt(archive, name, data):
        raise KeyboardInterrupt

    X, y = blobs(7, labels=("p", "q"))
    other = softreg.SoftmaxRegression(alpha=1.0).fit(X, y)
    monkeypatch.setattr(_model_io, "_write_member", interrupt)
    with pytest.raises(KeyboardInterrupt):
        save_model(other, model_path)
    assert model_path.read_bytes() == before
    assert os.listdir(model_path.parent) == [model_path.name]


def test_written_files_get_ordinary_permissions(tmp_path, fitted):
    umask = os.umask(0o022)
    try:
        save_model(fitted[0], tmp_path / "new.softreg")
        assert stat.S_IMODE((tmp_path / "new.softreg").stat().st_mode) == 0o644
        (tmp_path / "old.softreg").write_bytes(b"")
        os.chmod(tmp_path / "old.softreg", 0o640)
        save_model(fitted[0], tmp_path / "old.softreg")
        assert stat.S_IMODE((tmp_path / "old.softreg").stat().st_mode) == 0o640
    finally:
        os.umask(umask)


def test_failed_rename_cleans_up(tmp_path, fitted, monkeypatch):
    def refuse(source, target):
        raise PermissionError(13, "Permission denied", str(target))

    monkeypatch.setattr(_model_io.os, "replace", refuse)
    with pytest.raises(PermissionError):
        save_model(fitted[0], tmp_path / "m.softreg")
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------------------------------
# refusing files


def test_pickle_is_refused_without_unpickling(tmp_path, fitted):
    marker = tmp_path / "code-ran"
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps([fitted[0], CreatesFileWhenUnpickled(marker)]))
    with pytest.raises(
        ModelFileError,
        match=r"model\.pkl: looks like a pickle file, not a softreg model file; softreg never "
        r"unpickles, because loading a pickle can run arbitrary code",
    ):
        load_model(path)
    assert not marker.exists()


def test_protocol_0_pickle_is_refused(tmp_path):
    path = tmp_path / "old.pkl"
    path.write_bytes(pickle.dumps({"a": 1}, protocol=0))
    with pytest.raises(ModelFileError, match=r"old\.pkl: looks like a pickle file"):
        load_model(path)


def test_object_array_member_is_refused_without_unpickling(model_path, tmp_path):
    marker = tmp_path / "code-ran"
    content = members(model_path)
    header = json.loads(content["header.json"])
    evil = np.array([CreatesFileWhenUnpickled(marker)], dtype=object)
    content["classes_.npy"] = npy(evil, allow_pickle=True)
    header["arrays"]["classes_"]["dtype"] = "|O"
    rewrite(model_path, content, header=header)
    with pytest.raises(
        ModelFileError,
        match=r"lists array 'classes_' with dtype object; softreg model arrays are bool, "
        r"integer, float or unicode \(object arrays would need pickle",
    ):
        load_model(model_path)
    assert not marker.exists()


def test_object_array_under_a_harmless_dtype_is_refused(model_path, tmp_path):
    marker = tmp_path / "code-ran"
    content = members(model_path)
    content["classes_.npy"] = npy(
        np.array([CreatesFileWhenUnpickled(marker)] * 3, dtype=object), allow_pickle=True
    )
    rewrite(model_path, content)
    with pytest.raises(ModelFileError, match=r"array 'classes_' cannot be read without pickle"):
        load_model(model_path)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            b"hello world",
            r"is not a softreg model file \(a softreg model file is a zip archive, "
            r"starting with b'PK'; this file starts with b'hell'\)",
        ),
        (b"", r"starts with b''"),
        (npy(np.eye(2)), r"is a single NumPy \.npy array, not a softreg model file"),
    ],
)
def test_foreign_files_are_refused(tmp_path, content, message):
    path = tmp_path / "m.softreg"
    path.write_bytes(content)
    with pytest.raises(ModelFileError, match=message):
        load_model(path)


def test_plain_npz_is_refused(tmp_path):
    path = tmp_path / "arrays.npz"
    np.savez(path, coef_=np.eye(2))
    with pytest.raises(ModelFileError, match=r"is a zip archive but not a softreg model file"):
        load_model(path)


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9, 0.999])
def test_truncated_file_is_refused(model_path, keep):
    data = model_path.read_bytes()
    model_path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ModelFileError, match=r"is truncated or corrupted"):
        load_model(model_path)


def test_flipped_byte_is_refused(model_path):
    data = bytearray(model_path.read_bytes())
    offset = data.index(b"coef_.npy") + 40  # inside the compressed coef_ member
    data[offset] ^= 0xFF
    model_path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match=r"is (truncated or corrupted|.*SHA-256)"):
        load_model(model_path)


def test_tampered_array_fails_its_checksum(model_path):
    content = members(model_path)
    coef = np.lib.format.read_array(io.BytesIO(content["coef_.npy"]))
    content["coef_.npy"] = npy(coef * 2)
    rewrite(model_path, content, fix_checksums=False)
    with pytest.raises(
        ModelFileError,
        match=r"fails the SHA-256 check of array 'coef_': the file was corrupted or modified",
    ):
        load_model(model_path)


def edit_header(path, **changes):
    content = members(path)
    header = json.loads(content["header.json"])
    header.update(changes)
    rewrite(path, content, header=header)
    return header


def test_newer_format_asks_to_upgrade(model_path):
    edit_header(model_path, format_version=FORMAT_VERSION + 1, softreg_version="9.0")
    with pytest.raises(
        ModelFileError,
        match=rf"was written by softreg 9\.0 in model format {FORMAT_VERSION + 1}; this softreg "
        rf"\({softreg.__version__}\) reads format {FORMAT_VERSION} and older\. Upgrade softreg",
    ):
        load_model(model_path)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"format": "sklearn-model"}, r"names the format 'sklearn-model', not 'softreg-model'"),
        ({"format_version": "1"}, r"has an invalid format_version '1'"),
        ({"format_version": True}, r"has an invalid format_version True"),
        ({"format_version": 0}, r"has an invalid format_version 0"),
        (
            {"estimator": "os.system"},
            r"names the estimator 'os\.system'; softreg loads only "
            r"SoftmaxRegression, LinearRegression",
        ),
        ({"estimator": "builtins.eval"}, r"names the estimator 'builtins\.eval'"),
        ({"params": []}, r"has a header field 'params' of type list"),
        ({"training": None}, r"has a header field 'training' of type NoneType"),
        ({"feature_names": ["a", 2, "c"]}, r"has feature names that are not all strings"),
        ({"feature_names": ["a", "a", "c"]}, r"is inconsistent: 3 feature names"),
        ({"feature_names": ["a"]}, r"is inconsistent: 1 feature names"),
        ({"n_features": 4}, r"is inconsistent: coef_ has shape \(3, 3\) for 4 features"),
        ({"classes": ["x", "y", "z"]}, r"the header's classes differ from the classes_ array"),
        (
            {"params": {"alpha": 0.1, "evil": 1}},
            r"has hyper-parameters this softreg's "
            r"SoftmaxRegression does not know: evil",
        ),
    ],
)
def test_crafted_headers_are_refused(model_path, changes, message):
    edit_header(model_path, **changes)
    with pytest.raises(ModelFileError, match=message):
        load_model(model_path)


def test_missing_header_field(model_path):
    content = members(model_path)
    header = json.loads(content["header.json"])
    del header["arrays"]
    rewrite(model_path, content, header=header, fix_checksums=False)
    with pytest.raises(ModelFileError, match=r"has a header without the field 'arrays'"):
        load_model(model_path)


def test_corrupted_header_json(model_path):
    content = members(model_path)
    content["header.json"] = b'{"format": "softreg-model", '
    with zipfile.ZipFile(model_path, "w") as archive:
        for name, data in content.items():
            archive.writestr(name, data)
    with pytest.raises(ModelFileError, match=r"has a corrupted header\.json"):
        load_model(model_path)


def test_unexpected_member_is_refused(model_path):
    content = members(model_path)
    content["evil.pkl"] = pickle.dumps(1)
    rewrite(model_path, content)
    with pytest.raises(ModelFileError, match=r"has an unexpected member 'evil\.pkl'"):
        load_model(model_path)


def test_missing_member_is_refused(model_path):
    content = members(model_path)
    del content["intercept_.npy"]
    rewrite(model_path, content)
    with pytest.raises(ModelFileError, match=r"lacks the member 'intercept_\.npy'"):
        load_model(model_path)


def test_invalid_array_name_is_refused(model_path):
    content = members(model_path)
    header = json.loads(content["header.json"])
    header["arrays"]["../../etc/passwd"] = header["arrays"]["coef_"]
    rewrite(model_path, content, header=header)
    with pytest.raises(ModelFileError, match=r"lists an array with the invalid name"):
        load_model(model_path)


@pytest.mark.parametrize(
    ("name", "array", "message"),
    [
        (
            "coef_",
            np.zeros((3, 3), np.float32),
            r"has array 'coef_' of dtype float32 and shape "
            r"\(3, 3\), but its header says float64 and \(3, 3\)",
        ),
        ("intercept_", np.zeros(2), r"has array 'intercept_' of dtype float64 and shape \(2,\)"),
        ("classes_", np.array(["c", "b", "a"]), r"classes_ are not sorted and unique"),
        ("coef_", np.zeros(100_000), r"has a member 'coef_\.npy' larger than its header says"),
    ],
)
def test_inconsistent_arrays_are_refused(model_path, name, array, message):
    content = members(model_path)
    content[f"{name}.npy"] = npy(array)
    header = json.loads(content["header.json"])
    if name == "classes_":
        header["classes"] = array.tolist()
    rewrite(model_path, content, header=header)
    with pytest.raises(ModelFileError, match=message):
        load_model(model_path)


def test_intercept_shape_must_match_coef(model_path):
    content = members(model_path)
    header = json.loads(content["header.json"])
    content["intercept_.npy"] = npy(np.zeros(2))
    header["arrays"]["intercept_"]["shape"] = [2]
    rewrite(model_path, content, header=header)
    with pytest.raises(ModelFileError, match=r"intercept_ has shape \(2,\) for coef_ of shape"):
        load_model(model_path)


def test_history_arrays_must_agree(model_path):
    content = members(model_path)
    header = json.loads(content["header.json"])
    content["history_objective.npy"] = npy(np.zeros(1))
    header["arrays"]["history_objective"]["shape"] = [1]
    rewrite(model_path, content, header=header)
    with pytest.raises(ModelFileError, match=r"the history arrays differ in length"):
        load_model(model_path)


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "absent.softreg")


def test_load_model_is_exported_as_softreg_load(model_path):
    assert softreg.load is load_model
    assert isinstance(softreg.load(model_path), softreg.SoftmaxRegression)


def test_model_io_does_not_import_the_estimators():
    """Imports run one way: _estimator registers its classes with _model_io, never back."""
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(_model_io))
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    assert "softreg._estimator" not in imported
    assert set(_model_io.ESTIMATORS) == {"SoftmaxRegression", "LinearRegression"}
    assert _model_io.ESTIMATORS["SoftmaxRegression"] is softreg.SoftmaxRegression


def test_load_in_a_fresh_interpreter(model_path):
    """softreg.load finds the registered estimators without the caller importing them."""
    import subprocess
    import sys

    code = f"import softreg; print(type(softreg.load({str(model_path)!r})).__name__)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout == "SoftmaxRegression\n"
