"""Predictions of fixed-seed fits, to check that a change leaves models bit-identical.

Fits a set of small models (Voronoi and learned routers, top-2, plain and
ensemble experts, a routing tree, no validation, expert jobs in parallel,
warm-start growth, pruning, checkpoints, save/load and lazy load, and
classifiers on adult's categorical columns) and, with ``--full``, the
defaults on California housing and adult; saves every prediction, routing,
loss curve and kept epoch to one ``.npz``. ``--compare A B`` reports the
arrays that differ.

Usage, from the repository root (one checkout per version)::

    python benchmarks/identity.py before.npz --full     # in the old checkout
    python benchmarks/identity.py after.npz --full
    python benchmarks/identity.py --compare before.npz after.npz
"""
import sys, tempfile, warnings, time
import numpy as np, pandas as pd
warnings.filterwarnings("ignore")
from sklearn.model_selection import train_test_split
import skmoe
from skmoe import MoERegressor, MoEClassifier
from skmoe.datasets import load_california_housing

if sys.argv[1] == "--compare":
    a, b = np.load(sys.argv[2]), np.load(sys.argv[3])
    common = sorted(set(a.files) & set(b.files))
    differ = [k for k in common if a[k].shape != b[k].shape or not np.array_equal(a[k], b[k])]
    for k in differ:
        print("differs:", k)
    print(f"{len(common)} arrays compared, {len(differ)} differ; only in one file: "
          f"{sorted(set(a.files) ^ set(b.files))}")
    sys.exit(1 if differ else 0)
out, full = sys.argv[1], "--full" in sys.argv
data_dir = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--data-dir=")), "../shared/data")
res = {}
X, y = load_california_housing(numeric_only=True)
Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, random_state=0)
small = dict(max_epochs=4, n_iter_no_change=2, random_state=0)
sub = slice(0, 3000)
cases = {
    "vor": MoERegressor(**small),
    "vor_plain": MoERegressor(expert_members=1, prelu=False, **small),
    "vor_tree": MoERegressor(n_experts=6, voronoi_search="tree", **small),
    "learned1": MoERegressor(router="learned", **small),
    "learned2": MoERegressor(router="learned", top_k=2, **small),
    "noval": MoERegressor(early_stopping=False, **small),
    "jobs": MoERegressor(n_jobs=2, **small),
}
for name, m in cases.items():
    m.fit(Xtr.iloc[sub], ytr.iloc[sub])
    res[name] = m.predict(Xte)
    res[name + "_apply"] = m.apply(Xte)
    res[name + "_loss"] = np.array(m.loss_curve_)
    res[name + "_best"] = m.best_epoch_
# warm start growth and pruning
m = MoERegressor(**small).fit(Xtr.iloc[sub], ytr.iloc[sub])
m.set_params(warm_start=True, n_experts=6).fit(Xtr.iloc[sub], ytr.iloc[sub])
res["grow"] = m.predict(Xte)
m.prune_experts(min_share=0.1)
res["prune"] = m.predict(Xte)
ml = MoERegressor(router="learned", **small).fit(Xtr.iloc[sub], ytr.iloc[sub])
ml.set_params(warm_start=True, n_experts=6).fit(Xtr.iloc[sub], ytr.iloc[sub])
res["grow_learned"] = ml.predict(Xte)
# checkpoint and save/load
with tempfile.TemporaryDirectory() as d:
    m = MoERegressor(checkpoint_dir=d + "/ck", checkpoint_every=2, **small).fit(Xtr.iloc[sub], ytr.iloc[sub])
    res["ckpt_final"] = m.predict(Xte)
    res["ckpt_saved"] = skmoe.load(d + "/ck").predict(Xte)
    m.save(d + "/m")
    res["loaded"] = skmoe.load(d + "/m").predict(Xte)
    res["lazy"] = skmoe.load(d + "/m", lazy=True, max_experts_in_memory=1).predict(Xte)
# classification with categorical columns
df = pd.read_csv(f"{data_dir}/adult.csv.gz").drop(columns=["fnlwgt"])
yc = df.pop("income")
for c in df.columns:
    if df[c].dtype == object:
        df[c] = df[c].astype("category")
c = MoEClassifier(**small).fit(df.iloc[:4000], yc.iloc[:4000])
res["clf_proba"] = c.predict_proba(df.iloc[4000:6000])
c = MoEClassifier(class_weight="balanced", router="learned", **small).fit(df.iloc[:4000], yc.iloc[:4000])
res["clf_learned"] = c.predict_proba(df.iloc[4000:6000])
if full:
    t = time.perf_counter()
    m = MoERegressor(random_state=0).fit(Xtr, ytr)
    res["full_cal"] = m.predict(Xte)
    print("california", m.score(Xte, yte), time.perf_counter() - t, flush=True)
    dtr, dte, ytr2, yte2 = train_test_split(df, yc, test_size=0.2, random_state=0, stratify=yc)
    t = time.perf_counter()
    c = MoEClassifier(random_state=0).fit(dtr, ytr2)
    res["full_adult"] = c.predict_proba(dte)
    print("adult", c.score(dte, yte2), time.perf_counter() - t, flush=True)
np.savez(out, **res)
print("saved", len(res))
