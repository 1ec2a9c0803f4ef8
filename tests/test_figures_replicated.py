"""Figures that run their own simulations (fig03, fig13) and the sensitivity table (tab02) take
their replicates as the sweep figures do: trace seed i on the default bundle's replicate i
(`seeds.replicate_contexts`, `seeds.seed_rows`); tab02's rows for the swap rule's rate."""

from __future__ import annotations

import pytest
from bundle_factory import small_figure_context

from experiments.figures import fig03_best_pair as fig03
from experiments.figures import fig13_routers as fig13
from experiments.figures import seeds
from experiments.figures import tab02_sensitivity as tab02
from experiments.figures.context import FigureContext
from experiments.inputs import resolve_bundle
from experiments.sweep import read_store
from policies.planning import SWAP_FID_S_PER_GPU_S

TINY_TRACE = "poisson:rate=1,duration=20"


@pytest.fixture(scope="module")
def nominal():
    return resolve_bundle("default")


def default_ctx(nominal, folder, seed: int = 0) -> FigureContext:
    return FigureContext("default", nominal, folder, quick=True, seed=seed)


def test_replicate_contexts_pair_each_seed_with_its_bundle_replicate(nominal, tmp_path):
    ctx = default_ctx(nominal, tmp_path)
    contexts = seeds.replicate_contexts(ctx)
    assert contexts[0] is ctx  # its own seed on the nominal bundle: its cached runs
    assert [c.seed for c in contexts] == seeds.seeds_of(ctx) == [0, 1000, 2000]
    assert [c.bundle_spec for c in contexts] == [
        "default", "default:replicate=1", "default:replicate=2"
    ]
    assert [seeds.replicate_of(c) for c in contexts] == [0, 1, 2]
    assert contexts[1].bundle_hash == resolve_bundle("default:replicate=1").content_hash()
    assert len({c.bundle_hash for c in contexts}) == 3
    # the next context seed starts on replicate 5, not on the nominal bundle
    later = seeds.replicate_contexts(default_ctx(nominal, tmp_path, seed=1))
    assert [seeds.replicate_of(c) for c in later] == [5, 6, 7]
    # a bundle with no generative model: the trace seed only, on the same bundle
    small = small_figure_context(tmp_path)
    plain = seeds.replicate_contexts(small)
    assert [c.seed for c in plain] == seeds.seeds_of(small)
    assert {c.bundle_hash for c in plain} == {small.bundle_hash}
    assert {seeds.replicate_of(c) for c in plain} == {None}


def test_fig03_runs_each_seed_on_its_bundle_replicate(nominal, tmp_path, monkeypatch):
    monkeypatch.setattr(seeds, "N_SEEDS_QUICK", 2)
    monkeypatch.setitem(fig03.LOAD_FRACTIONS, True, (0.1,))
    monkeypatch.setitem(fig03.DURATION_S, True, 30)
    ctx = default_ctx(nominal, tmp_path)
    data = fig03.compute(ctx)
    sim = data[data["kind"] == "simulated"]
    assert sim.groupby("seed")["replicate"].unique().map(list).to_dict() == {0: [0], 1000: [1]}
    # seed 1000's run is the run on replicate 1, not on the nominal bundle
    row = sim[sim["seed"] == 1000].iloc[0]
    light, heavy = row["pair"].split(" → ")
    rate = float(row["demand_qps"])
    trace = fig03.load_trace(rate, 30)
    replicate = FigureContext("default:replicate=1", resolve_bundle("default:replicate=1"),
                              tmp_path, quick=True, seed=1000)
    on_replicate = replicate.run("diffserve", trace, {"light": light, "heavy": heavy}).summary
    on_nominal = default_ctx(nominal, tmp_path, seed=1000).run(
        "diffserve", trace, {"light": light, "heavy": heavy}
    ).summary
    assert row["fid"] == on_replicate["fid"] != on_nominal["fid"]


def test_fig13_runs_each_seed_on_its_bundle_replicate(nominal, tmp_path, monkeypatch):
    monkeypatch.setattr(seeds, "N_SEEDS_QUICK", 2)
    monkeypatch.setitem(fig13.ROUTERS, True, ("bundle", "random"))
    monkeypatch.setitem(fig13.TRACE, True, "azure:peak=6,min=1,seconds_per_hour=0.05")
    ctx = default_ctx(nominal, tmp_path)
    data = fig13.compute(ctx)
    per_seed = data[data["kind"] == "seed"]
    assert per_seed.groupby("seed")["replicate"].unique().map(list).to_dict() == {
        0: [0], 1000: [1]
    }
    assert (data.loc[data["kind"] == "average", "n_seeds"] == 2).all()
    row = per_seed[(per_seed["seed"] == 1000) & (per_seed["router"] == "bundle")].iloc[0]
    replicate = FigureContext("default:replicate=1", resolve_bundle("default:replicate=1"),
                              tmp_path, quick=True, seed=1000)
    assert row["fid"] == replicate.run("hadis", fig13.TRACE[True]).summary["fid"]


def test_tab02_rows_run_on_the_bundle_replicates(nominal, tmp_path, monkeypatch):
    monkeypatch.setattr(tab02, "TRACE", TINY_TRACE)
    ctx = default_ctx(nominal, tmp_path)
    default = next(a for a in tab02.choice_alternatives() if a.setting == "defaults")
    rows = tab02.per_seed_rows(ctx, default)
    assert sorted(rows["seed"].unique()) == seeds.seeds_of(ctx)[: tab02.QUICK_SEEDS]
    store = read_store(tmp_path / "sweeps" / seeds.STORE)
    assert sorted(store.groupby("seed")["replicate"].first().to_dict().items()) == [
        (0, 0), (1000, 1)
    ]
    assert store["hash.bundle"].nunique() == 2
    # the default rows are exactly Fig. 7's runs (the same sweep points, seed_rows)
    again = seeds.seed_rows(ctx, TINY_TRACE, tab02.METHODS, tab02.KEYS, n_seeds=2)
    assert len(read_store(tmp_path / "sweeps" / seeds.STORE)) == len(store) == len(again)


def test_tab02_varies_the_swap_rules_rate():
    alts = [a for a in tab02.choice_alternatives() if a.choice == "swap rule rate"]
    assert [a.value for a in alts] == ["1", "0.25", "4"]
    assert SWAP_FID_S_PER_GPU_S == 1.0
    assert alts[0].setting == "defaults" and not alts[0].options  # the default shares runs
    assert [a.options for a in alts[1:]] == [
        {"hadis": {"swap_fid_s_per_gpu_s": 0.25}},
        {"hadis": {"swap_fid_s_per_gpu_s": 4.0}},
    ]
    assert alts[1].setting == "hadis: swap_fid_s_per_gpu_s=0.25"


def test_tab02_swap_rate_rows_reach_hadis(nominal, tmp_path, monkeypatch):
    monkeypatch.setattr(tab02, "TRACE", TINY_TRACE)
    monkeypatch.setattr(tab02, "QUICK_SEEDS", 1)
    ctx = default_ctx(nominal, tmp_path)
    alt = next(a for a in tab02.choice_alternatives() if a.value == "4")
    row = tab02.summary_row(alt, tab02.per_seed_rows(ctx, alt))
    assert row["choice"] == "swap rule rate" and not row["default"]
    store = read_store(tmp_path / "sweeps" / seeds.STORE)
    configs = store.loc[store["policy"] == "hadis", "config"]
    assert len(configs) == 1 and '"swap_fid_s_per_gpu_s": 4.0' in configs.iloc[0]
    proteus = store.loc[store["policy"] == "proteus", "config"].iloc[0]
    assert "swap_fid_s_per_gpu_s" not in proteus
