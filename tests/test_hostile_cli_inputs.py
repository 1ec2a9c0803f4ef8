"""Hostile input files of commands the other hostile tests do not reach: each is refused with
exit 2 and exactly one line `error: ...` naming the file and the problem."""

from __future__ import annotations

import numpy as np
import pytest
from bundle_factory import make_bundle
from hostile import assert_one_line_error, invoke, save_damaged_npz

from simulator.bundle import write_bundle


def _features(path, features=None):
    rng = np.random.default_rng(0)
    features = rng.normal(size=(400, 2, 30)) if features is None else features
    np.savez(path, features=features, names=np.array(["a"]), extractor=np.array("tiny"))


def _reference(path, **change):
    arrays = {"mu": np.zeros(30), "sigma": np.eye(30), "n": np.int64(10), **change}
    np.savez(path, **arrays)


NPZ_CASES = {
    "text file as features": (
        lambda f, r: (f.write_text("x\n"), _reference(r)),
        "{f}: not an .npz (zip) archive",
    ),
    "damaged compressed features": (
        lambda f, r: (
            save_damaged_npz(
                f,
                features=np.random.default_rng(0).normal(size=(400, 2, 30)),
                names=np.array(["a"]),
                extractor=np.array("tiny"),
            ),
            _reference(r),
        ),
        "{f}: unreadable .npz (Error -3 while decompressing data: invalid distance too far back)",
    ),
    "scalar features": (
        lambda f, r: (_features(f, np.float64(3.0)), _reference(r)),
        "{f}: features: expected numbers of shape (..., d), got float64 of shape ()",
    ),
    "text file as reference": (
        lambda f, r: (_features(f), r.write_text("x\n")),
        "{r}: not an .npz (zip) archive",
    ),
    "reference count an array": (
        lambda f, r: (_features(f), _reference(r, n=np.arange(3))),
        "{r}: n: expected an integer, got int64 of shape (3,)",
    ),
    "reference mean of strings": (
        lambda f, r: (_features(f), _reference(r, mu=np.array(["x"] * 30))),
        "{r}: mu: expected numbers, got <U1",
    ),
}


@pytest.mark.parametrize("case", sorted(NPZ_CASES))
def test_profile_fid_refuses_bad_npz_files_in_one_line(tmp_path, case):
    features, reference = tmp_path / "features.npz", tmp_path / "reference.npz"
    write, message = NPZ_CASES[case]
    write(features, reference)
    outcome = invoke("profile", "fid", "--features", features, "--reference", reference)
    line = assert_one_line_error(outcome)
    assert line == "error: " + message.format(f=features, r=reference)


@pytest.mark.parametrize(
    ("file", "old", "new", "message"),
    [
        (
            "models.csv",
            "light,4,",
            "light,1e308,",
            "models.csv: row 1: column steps: value 1e+308 is not an integer >= 1 "
            "and <= 9007199254740992",
        ),
        (
            "latency.csv",
            "heavy,8,",
            "heavy,1e30,",
            "latency.csv: row 4: column batch_size: value 1e+30 is not an integer >= 1 "
            "and <= 9007199254740992",
        ),
    ],
)
def test_bundle_integers_past_the_exact_float_range_are_refused(tmp_path, file, old, new, message):
    """Cast to int64 such a value wrapped round: a bundle with -2**63 denoising steps was
    accepted, and a batch size of 1e30 was reported as a latency decreasing with batch size."""
    folder = write_bundle(make_bundle(), tmp_path / "b")
    path = folder / file
    assert old in path.read_text()
    path.write_text(path.read_text().replace(old, new, 1))
    line = assert_one_line_error(invoke("bundle", "info", folder))
    assert line == f"error: {folder}/{message}"


def test_profile_refuses_an_unknown_torch_device_before_any_work(tmp_path):
    """torch's own error was a traceback once the tiny model had been built."""
    pytest.importorskip("torch")
    args = ("profile", "latency", "--model", "tiny:0:8", "--name", "x", "--steps", "1")
    outcome = invoke(*args, "--device", "nosuch", "--work", tmp_path / "w")
    line = assert_one_line_error(outcome)
    assert line == (
        "error: Invalid value for '--device': 'nosuch': expected a torch device (cuda, cuda:1, cpu)"
    )
    assert not (tmp_path / "w").exists()


@pytest.mark.parametrize("weights", ["abc", "1,2", "1,2,3,4,5,6,7,nan", "1,2,3,4,5,6,7,8,9"])
def test_build_table_refuses_router_weights_that_are_not_8_numbers(tmp_path, weights):
    """`float('abc')`'s own message named no option; a NaN weight or a wrong count was taken."""
    outcome = invoke(
        "profile", "build-table", "--name", "x", "--router-weights", weights, "--work", tmp_path
    )
    line = assert_one_line_error(outcome)
    assert line.startswith(
        f"error: Invalid value for '--router-weights': {weights!r}: expected 8 comma-separated "
        "finite numbers (prompt_length, token_rarity,"
    )


def test_profile_refuses_steps_below_one(tmp_path):
    """numpy's "Number of samples, -1, must be non-negative." named no option."""
    args = ("profile", "latency", "--model", "tiny:0:8", "--name", "x", "--steps", "-1")
    line = assert_one_line_error(invoke(*args, "--work", tmp_path / "w"))
    assert line.startswith("error: Invalid value for '--steps': ")
    assert not (tmp_path / "w").exists()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--compare", "{bin}"), "{bin}: not a CSV table ('utf-8' codec can't decode byte 0x94"),
        (("--compare", "{empty}"), "{empty}: not a CSV table (No columns to parse from file)"),
        (("--compare", "{none}"), "{none}: no such file"),
        (("--concreteness", "{bin}", "--spatial-terms", "{terms}"), "{bin}: not a CSV table ("),
        (("--concreteness", "{norms}", "--spatial-terms", "{bin}"), "{bin}: not UTF-8 text"),
        (("--concreteness", "{norms}", "--spatial-terms", "{none}"), "{none}: No such file"),
    ],
)
def test_prompt_features_name_the_file_they_cannot_read(tmp_path, flags, message):
    """pandas' and Python's own errors ("'utf-8' codec can't decode ...") named no file."""
    files = {
        "bin": tmp_path / "bin.csv",
        "empty": tmp_path / "empty.csv",
        "none": tmp_path / "none.csv",
        "terms": tmp_path / "terms.txt",
        "norms": tmp_path / "norms.csv",
    }
    files["bin"].write_bytes(b"\x94\x95\x00garbage")
    files["empty"].write_text("")
    files["terms"].write_text("above\n")
    files["norms"].write_text("Word,Conc.M\nball,4.5\n")
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red ball\n")
    outcome = invoke(
        "profile", "prompt-features", "--prompts", prompts, "--out", tmp_path / "out.csv",
        "--work", tmp_path / "w", *(flag.format(**files) for flag in flags),
    )  # fmt: skip
    line = assert_one_line_error(outcome)
    assert line.startswith("error: " + message.format(**files))


def test_a_latency_under_a_microsecond_is_refused(tmp_path):
    """1e-20 s passed the bundle's rules and made HiGHS refuse the MILP (exit 1)."""
    folder = write_bundle(make_bundle(), tmp_path / "b")
    path = folder / "latency.csv"
    header, first, *rest = path.read_text().splitlines()
    cells = dict(zip(header.split(","), first.split(",")))
    cells["latency_p50_s"] = cells["latency_p95_s"] = "1e-20"
    path.write_text("\n".join([header, ",".join(cells.values()), *rest]) + "\n")
    out = tmp_path / "run"
    args = ("--policy", "hadis", "--trace", "poisson:rate=2,duration=30", "--out", out)
    line = assert_one_line_error(invoke("simulate", "--bundle", folder, *args, "--quiet"))
    assert line == (
        f"error: {path}: row 1: column latency_p50_s: value 1e-20 is not a finite number >= 1e-06"
    )
    assert not out.exists()
