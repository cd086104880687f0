"""Write the course's notebooks from their cell sources, execute them in place (outputs committed),
and render each as a page of the documentation site.

    python notebooks/build.py            # all of them
    python notebooks/build.py NAME ...   # some of them

A cell is ``("md", text)``, ``("code", source)`` or ``("exercise", exercise_id, stub)``: the stub
defines the learner's function (its body raises ``NotImplementedError``) and the builder appends
``check(fn, exercise_id)``. The committed notebooks carry the stubs; :func:`notebook` with
``solutions=True`` fills in ``course.solutions`` and adds, after each exercise, a check of its first
known wrong answer (how the test suite runs them). Needs the ``notebooks`` extra.
"""

from __future__ import annotations

import base64
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
DOCS = HERE.parent / "docs" / "course"


def setup(*packages: str) -> str:
    """The head of a notebook's first code cell: its imports (of ``packages``, the ones it uses,
    so that ruff finds none unused) and the print and figure settings."""
    alias = {"tokenmdp": "tm", "toybandit": "tb"}
    own = "".join(f"import {p} as {alias[p]}\n" for p in sorted(packages))
    return f"""import matplotlib.pyplot as plt
import torch

{own}from course import check

torch.set_printoptions(precision=4)
plt.rcParams.update({{"figure.dpi": 80, "savefig.dpi": 80}})"""


KL_BANDIT = [
    (
        "md",
        """# 1. The KL-regularised bandit and its Gibbs optimum

**Learning goals.** After this notebook you can (a) write down the objective every method of the course
starts from, Nguyen 2025, eq. (1); (b) derive its maximiser, the Gibbs policy π* ∝ π_ref·exp(r/β); (c) say
what β does at both ends; (d) evaluate J(π) and see that no policy beats J(π*) = β log Z.

A *prompt* x has finitely many *responses* y. A score (reward) r(y), a reference policy π_ref and a
strength β > 0 define

J(π) = E_{y∼π}[r(y)] − β KL(π‖π_ref),    Nguyen 2025, eq. (1).

Setting the derivative of the Lagrangian to zero gives log π(y) = log π_ref(y) + r(y)/β − log Z, i.e.

π*(y) = π_ref(y) exp(r(y)/β) / Z,    Z = Σ_y π_ref(y) exp(r(y)/β),    and J(π*) = β log Z.""",
    ),
    (
        "code",
        setup("toybandit")
        + """
g = torch.Generator().manual_seed(0)
reward = torch.tensor([1.0, 0.2, -0.5, 0.6, -1.0], dtype=torch.float64)
ref = torch.softmax(torch.randn(5, generator=g, dtype=torch.float64), -1)
beta = 0.5
star = tb.optimal_policy(reward, ref, beta)
star, tb.regularized_value(star, reward, ref, beta) - tb.log_partition(reward, ref, beta)""",
    ),
    (
        "md",
        """**β interpolates between π_ref and the argmax.** A strong penalty (large β) keeps π* at π_ref; a weak
one (β → 0) puts all mass on the best response.""",
    ),
    (
        "code",
        """betas = [0.05, 0.3, 1.0, 5.0]
fig, ax = plt.subplots(figsize=(6, 3))
w = 0.15
ax.bar(torch.arange(5) - 2 * w, ref, w, color="k", label="π_ref")
for k, b in enumerate(betas):
    ax.bar(torch.arange(5) + (k - 1) * w, tb.optimal_policy(reward, ref, b), w, label=f"π*, β={b}")
ax.set(xlabel="response y", ylabel="probability", xticks=range(5))
ax.legend(fontsize=7); fig.tight_layout()""",
    ),
    (
        "md",
        """**Nothing beats the Gibbs policy.** J(π) for random policies, and along the geometric path
π_t ∝ π_ref^{1−t}·(π*)^t: the curve peaks at t = 1 at exactly β log Z.""",
    ),
    (
        "code",
        """ts = torch.linspace(-0.5, 2.0, 101, dtype=torch.float64)
path = torch.softmax((1 - ts[:, None]) * ref.log() + ts[:, None] * star.log(), -1)
others = torch.softmax(2 * torch.randn(200, 5, generator=g, dtype=torch.float64), -1)
fig, (a, b) = plt.subplots(1, 2, figsize=(8, 3))
a.plot(ts, tb.regularized_value(path, reward, ref, beta)); a.axvline(1.0, color="k", ls=":")
a.axhline(tb.log_partition(reward, ref, beta), color="C3", ls="--", label="β log Z")
a.set(xlabel="t", ylabel="J(π_t)"); a.legend(fontsize=8)
b.hist(tb.regularized_value(others, reward, ref, beta), bins=30, color="C1")
b.axvline(tb.log_partition(reward, ref, beta), color="C3", ls="--")
b.set(xlabel="J(π), 200 random policies", ylabel="count"); fig.tight_layout()""",
    ),
    (
        "md",
        """## Exercises

**1.1** Write the Gibbs optimum. Work in log space (`torch.softmax` of a sum of logs is the stable way to
normalise). `reward` and `ref` are float64 tensors of shape [Y], `beta` a float.""",
    ),
    (
        "exercise",
        "kl_bandit.gibbs",
        '''def gibbs_policy(reward, ref, beta):
    """π*(y) = π_ref(y) exp(r(y)/β) / Z."""
    raise NotImplementedError  # your code here''',
    ),
    (
        "md",
        """**1.2** Write the objective (1) itself, for one policy: a scalar. (KL(π‖π_ref) = Σ_y π(y) log π(y)/π_ref(y).)""",
    ),
    (
        "exercise",
        "kl_bandit.value",
        '''def regularized_value(policy, reward, ref, beta):
    """J(π) = E_π[r] − β KL(π‖π_ref), Nguyen 2025, eq. (1)."""
    raise NotImplementedError  # your code here''',
    ),
    (
        "md",
        """**1.3** (no checker) Show that J(π*) − J(π) = β KL(π‖π*) for every π, and verify it numerically with
`tb.kl_divergence` on the random policies above. Next: where does the reward come from?""",
    ),
]

BRADLEY_TERRY = [
    (
        "md",
        """# 2. Bradley–Terry and reward modelling

**Learning goals.** (a) Read a preference matrix P[i, j] = P(y_i ≻ y_j) and its conditions (8a–c) of
Nguyen 2025; (b) write the Bradley–Terry model P(y_i ≻ y_j) = σ(r_i − r_j) (Nguyen 2025, sec. 2.1);
(c) fit a reward model with the logistic loss (3); (d) see which part of the reward data can identify
(differences only).

Human labels compare two responses: c = 1 when y₁ is preferred. If some score s explains them through
σ(s(y₁) − s(y₂)), the score is found by minimising the logistic loss

−E_{(y₁, y₂), c}[𝓛_logistic(σ(s(y₁) − s(y₂)), c)],    Nguyen 2025, eq. (3).""",
    ),
    (
        "code",
        setup("toybandit")
        + """
reward = torch.tensor([1.2, 0.5, 0.0, -0.3, -1.4], dtype=torch.float64)
P = tb.bradley_terry(reward)
tb.check_preference(P)   # (8a–c): P[i, j] + P[j, i] = 1, P[i, i] = ½, entries in [0, 1]
P""",
    ),
    (
        "code",
        """fig, (a, b) = plt.subplots(1, 2, figsize=(8, 3.2))
im = a.imshow(P, cmap="RdBu", vmin=0, vmax=1); fig.colorbar(im, ax=a)
a.set(title="P(y_i ≻ y_j), Bradley–Terry", xlabel="j", ylabel="i")
d = torch.linspace(-5, 5, 200, dtype=torch.float64)
b.plot(d, torch.sigmoid(d)); b.set(xlabel="r_i − r_j", ylabel="P(y_i ≻ y_j)", title="σ of the gap")
b.axhline(0.5, color="k", lw=0.5); fig.tight_layout()""",
    ),
    (
        "md",
        """**Only differences are identified.** Adding a constant to r leaves P unchanged, so a fitted reward
model is only defined up to a constant. Below: pairs sampled from μ, a reward fitted by maximum likelihood
(a logistic regression on the differences, here via `tb.fit_policy` with a uniform π_ref and β = 1, whose
log-policy *is* the fitted reward up to a constant — the link DPO exploits in notebook 3), centred and
compared with the truth.""",
    ),
    (
        "code",
        """mu = torch.full((5,), 0.2, dtype=torch.float64)
def centred(r):
    return r - r.mean()
pair_i, pair_j = (t.flatten() for t in torch.meshgrid(torch.arange(5), torch.arange(5), indexing="ij"))
sizes, errors = [100, 300, 1000, 3000, 10000, 30000], []
for n in sizes:
    data = tb.sample_preferences(P, mu, n, torch.Generator().manual_seed(n))
    counts = torch.bincount(data.chosen * 5 + data.rejected, minlength=25).double()   # the data as pair counts
    fitted = tb.fit_policy(pair_i, pair_j, mu, beta=1.0, weights=counts / n).log()
    errors.append((centred(fitted) - centred(reward)).abs().max().item())
fig, (a, b) = plt.subplots(1, 2, figsize=(8, 3))
a.loglog(sizes, errors, "o-", label="max |r̂ − r| (centred)"); a.loglog(sizes, [3 / n ** 0.5 for n in sizes], "k:", label="∝ n^-1/2")
a.set(xlabel="sampled pairs"); a.legend(fontsize=7)
b.bar(torch.arange(5) - 0.2, centred(reward), 0.4, label="true r"); b.bar(torch.arange(5) + 0.2, centred(fitted), 0.4, label=f"fitted, n={sizes[-1]}")
b.set(xlabel="response", ylabel="centred reward"); b.legend(fontsize=7); fig.tight_layout()""",
    ),
    (
        "md",
        """## Exercises

**2.1** Write the Bradley–Terry matrix for a reward vector [Y]: P[i, j] = σ(r_i − r_j), shape [Y, Y].""",
    ),
    (
        "exercise",
        "bradley_terry.matrix",
        '''def bt_matrix(reward):
    """P[i, j] = σ(r_i − r_j)."""
    raise NotImplementedError  # your code here''',
    ),
    (
        "md",
        """**2.2** Write the reward model's loss on a data set of pairs: `chosen[k]`, `rejected[k]` are the indices
of the preferred and the other response of pair k. Return the mean over pairs of −log σ(r(y_w) − r(y_l))
(`torch.nn.functional.logsigmoid` is the stable log σ).""",
    ),
    (
        "exercise",
        "bradley_terry.nll",
        '''def reward_model_loss(reward, chosen, rejected):
    """−mean log σ(r[chosen] − r[rejected]), the logistic loss (3)."""
    raise NotImplementedError  # your code here''',
    ),
    (
        "md",
        """**2.3** (no checker) Take `P = tb.random_preference(3, generator=..., kind="cyclic")`: y0 ≻ y1 ≻ y2 ≻ y0.
Show that no reward satisfies σ(r_i − r_j) = P[i, j]. What does the fitted reward do on such data?
Notebook 4 answers with a score that always exists.""",
    ),
]

DPO = [
    (
        "md",
        """# 3. Deriving DPO: the partition function cancels

**Learning goals.** (a) Invert the Gibbs optimum of notebook 1 to express the reward through the policy;
(b) see why β log Z, which nobody can compute, cancels from every comparison, Nguyen 2025, eq. (4);
(c) write the DPO loss, Rafailov et al. 2024, eq. (4); (d) see where DPO goes wrong: deterministic
preferences (Nguyen 2025, sec. 2.3).

Taking logs of π* = π_ref e^{r/β}/Z gives

r(y) = β log π*(y)/π_ref(y) + β log Z,    (Nguyen 2025, eq. (5): the optimality condition)

and in a difference of two responses of the same prompt Z cancels:

r(y₁) − r(y₂) = β log π*(y₁)/π_ref(y₁) − β log π*(y₂)/π_ref(y₂),    Nguyen 2025, eq. (4).

Put this into the Bradley–Terry loss of notebook 2 and the reward model disappears: the DPO loss

𝓛_DPO = −E_{(y_w, y_l)}[log σ(β log π(y_w)/π_ref(y_w) − β log π(y_l)/π_ref(y_l))],    Rafailov et al. 2024, eq. (4).""",
    ),
    (
        "code",
        setup("toybandit")
        + """
g = torch.Generator().manual_seed(3)
reward = torch.randn(5, generator=g, dtype=torch.float64)
ref = torch.softmax(torch.randn(5, generator=g, dtype=torch.float64), -1)
beta = 0.7
star = tb.optimal_policy(reward, ref, beta)
implied = beta * tb.logratios(star, ref)
# the implied reward is off by β log Z, the same for every response: differences are exact
implied - reward, tb.log_partition(reward, ref, beta)""",
    ),
    (
        "md",
        """**The population DPO optimum is the RLHF optimum.** With pairs labelled by Bradley–Terry on r, the
exact population DPO loss is minimised at π* (Newton's method on the exact loss, `tb.fit_policy` with the
pair weights of `tb.population_pairs`); the left panel compares the two, the right one shows the implied
reward differences converging during the fit.""",
    ),
    (
        "code",
        """mu = torch.full((5,), 0.2, dtype=torch.float64)
pairs = tb.population_pairs(tb.bradley_terry(reward), mu)
fitted = tb.fit_policy(pairs.chosen, pairs.rejected, ref, beta=beta, weights=pairs.weights)
def gap(r):
    return r[:, None] - r[None, :]
errs = [(gap(beta * tb.logratios(tb.fit_policy(pairs.chosen, pairs.rejected, ref, beta=beta, weights=pairs.weights, steps=s), ref)) - gap(reward)).abs().max().item() for s in range(1, 7)]
fig, (a, b) = plt.subplots(1, 2, figsize=(8, 3))
x = torch.arange(5)
a.bar(x - 0.25, ref, 0.25, color="k", label="π_ref"); a.bar(x, star, 0.25, label="π* (RLHF)"); a.bar(x + 0.25, fitted, 0.25, label="π_DPO (population)")
a.set(xlabel="response", ylabel="probability"); a.legend(fontsize=7)
b.semilogy(range(1, 7), errs, "o-"); b.set(xlabel="Newton step", ylabel="max |Δr̂ − Δr|"); fig.tight_layout()
(fitted - star).abs().max()""",
    ),
    (
        "md",
        """**Why DPO overfits deterministic preferences.** When y₁ always wins, σ(h) must reach 1: h → +∞ whatever
β, and the policy leaves π_ref entirely (Azar et al. 2023; Nguyen 2025, sec. 2.3). IPO (notebook 4)
regresses h on a finite target and stops.""",
    ),
    (
        "code",
        """pref = tb.from_upper_triangle(torch.ones(3, 3, dtype=torch.float64))   # y0 ≻ y1 ≻ y2, always
ref3 = mu3 = torch.full((3,), 1 / 3, dtype=torch.float64)
pairs3 = tb.population_pairs(pref, mu3)
fig, ax = plt.subplots(figsize=(5, 3.2))
for k, b in enumerate([0.1, 1.0, 10.0]):
    dpo = [tb.fit_policy(pairs3.chosen, pairs3.rejected, ref3, beta=b, weights=pairs3.weights, steps=s)[0].item() for s in range(1, 16)]
    ipo = tb.fit_policy(pairs3.chosen, pairs3.rejected, ref3, "ipo", tau=b, weights=pairs3.weights)[0].item()
    ax.plot(range(1, 16), dpo, f"C{k}-", label=f"DPO β={b}")
    ax.axhline(ipo, color=f"C{k}", ls="--", label=f"IPO τ={b}")
ax.set(xlabel="Newton step", ylabel="π(y0)"); ax.legend(fontsize=7); fig.tight_layout()""",
    ),
    (
        "md",
        """The same happens with a *stochastic* Bradley–Terry preference and finite data: a pair only ever seen
one way round is deterministic for the empirical loss.""",
    ),
    (
        "code",
        """r3 = torch.tensor([1.0, 0.0, -1.0], dtype=torch.float64)
for n in [5, 20, 200, 5000]:
    data = tb.sample_preferences(tb.bradley_terry(r3), mu3, n, torch.Generator().manual_seed(n))
    dpo = tb.fit_policy(data.chosen, data.rejected, ref3, beta=1.0)
    print(f"n={n:5d}  DPO {dpo.numpy().round(3)}  RLHF optimum {tb.optimal_policy(r3, ref3, 1.0).numpy().round(3)}")""",
    ),
    (
        "md",
        """## Exercises

**3.1** The implied reward of a policy, without the constant: β log π(y)/π_ref(y), shape [Y].""",
    ),
    (
        "exercise",
        "dpo.implied_reward",
        '''def implied_reward(policy, ref, beta):
    """β log π(y)/π_ref(y)."""
    raise NotImplementedError  # your code here''',
    ),
    (
        "md",
        """**3.2** The DPO loss of a policy on a data set of pairs (indices `chosen`, `rejected`), averaged over pairs.""",
    ),
    (
        "exercise",
        "dpo.loss",
        '''def dpo_loss(policy, ref, beta, chosen, rejected):
    """−mean log σ(β log π/π_ref(y_w) − β log π/π_ref(y_l)), Rafailov et al. 2024, eq. (4)."""
    raise NotImplementedError  # your code here''',
    ),
    (
        "md",
        """**3.3** (no checker) Add a constant c to the reward. What happens to β log Z, to π*, and to the DPO loss?
The exact checks behind this notebook: `proofs-check --claim nguyen2025.sec23`.""",
    ),
]

IPO = [
    (
        "md",
        """# 4. Ψ-preferences and IPO (Lemma 3.1)

**Learning goals.** (a) Define the score s†(y) = E_{y'∼μ}[P(y ≻ y')] of Nguyen 2025, eq. (7), which exists
for *any* preference, transitive or not; (b) follow Lemma 3.1: the regression on the unknown target (9)
and on the preference itself (10) differ by a policy-independent constant; (c) spot the reversed target
c − 1 of eq. (11) as printed and correct it to 2 − c; (d) see IPO's loss (12) on data converge to the
ΨPO optimum.

IPO reads DPO's optimality condition (Nguyen 2025, eq. (5)) with the score s† in place of a reward: the
IPO optimum is the Gibbs policy of notebook 1 for s†, π*(y) ∝ π_ref(y) exp(s†(y)/β).""",
    ),
    (
        "code",
        setup("toybandit")
        + """
g = torch.Generator().manual_seed(0)
pref = tb.random_preference(4, generator=g, kind="cyclic")   # y0 ≻ y1 ≻ y2 ≻ y0
mu = torch.softmax(torch.randn(4, generator=g, dtype=torch.float64), -1)
ref = torch.softmax(torch.randn(4, generator=g, dtype=torch.float64), -1)
beta = 0.5
score = tb.psi_scores(pref, mu)          # eq. (7), Ψ = identity
star = tb.psi_optimal_policy(pref, mu, ref, beta)
pref, score, star""",
    ),
    (
        "code",
        """fig, (a, b) = plt.subplots(1, 2, figsize=(8, 3))
im = a.imshow(pref, cmap="RdBu", vmin=0, vmax=1); fig.colorbar(im, ax=a); a.set(title="a cyclic P(y_i ≻ y_j)", xlabel="j", ylabel="i")
x = torch.arange(4)
b.bar(x - 0.25, ref, 0.25, color="k", label="π_ref"); b.bar(x, mu, 0.25, color="C2", label="μ"); b.bar(x + 0.25, star, 0.25, label="π*_IPO, β=0.5")
for i, s in enumerate(score.tolist()):
    b.text(i, 0.02, f"s†={s:.2f}", ha="center", fontsize=7, rotation=90, color="w")
b.set(xlabel="response"); b.legend(fontsize=7); fig.tight_layout()""",
    ),
    (
        "md",
        """**Lemma 3.1.** (9) and (10) differ by a constant — the same for every policy — so they have the same
minimiser.""",
    ),
    (
        "code",
        """policies = [torch.softmax(2 * torch.randn(4, generator=g, dtype=torch.float64), -1) for _ in range(5)]
[(tb.ipo_target_objective(p, pref, mu, ref, beta) - tb.ipo_preference_objective(p, pref, mu, ref, beta)).item() for p in policies]""",
    ),
    (
        "md",
        """The assumption that matters: the pairs must come from the same μ that defines s†. Draw them from another
ν and the difference moves with the policy:""",
    ),
    (
        "code",
        """nu = torch.softmax(3 * torch.randn(4, generator=g, dtype=torch.float64), -1)
def ten(p, pairs):
    q = beta * (p.log() - ref.log()); h = q[:, None] - q[None, :]
    return (pairs[:, None] * pairs[None, :] * (h - pref) ** 2).sum()
[(tb.ipo_target_objective(p, pref, mu, ref, beta, pairs_from=nu) - ten(p, nu)).item() for p in policies]""",
    ),
    (
        "md",
        """**Eq. (11) as printed** regresses h on c − 1, which is 0 when y₁ wins: the target is reversed. The corrected
target is 2 − c = 𝟙[y₁ ≻ y₂]; then (11) = (10) + E[v(1 − v)] and (11) = (12) + ¼:""",
    ),
    (
        "code",
        """p = policies[0]
eleven = tb.ipo_label_objective(p, pref, mu, ref, beta)
printed = tb.ipo_label_objective(p, pref, mu, ref, beta, printed=True)
(eleven - tb.ipo_objective(p, pref, mu, ref, beta)).item(), printed.item(), eleven.item()""",
    ),
    (
        "md",
        """**Eq. (12) from data.** IPO's loss on sampled pairs, minimised exactly, approaches the ΨPO optimum as the
sample grows:""",
    ),
    (
        "code",
        """sizes = [30, 100, 300, 1000, 3000, 10000]
errors = []
for n in sizes:
    data = tb.sample_preferences(pref, mu, n, torch.Generator().manual_seed(n))
    fitted = tb.fit_policy(data.chosen, data.rejected, ref, "ipo", tau=beta)
    errors.append((fitted - star).abs().max().item())
plt.figure(figsize=(4.5, 3)); plt.loglog(sizes, errors, "o-"); plt.loglog(sizes, [1 / n ** 0.5 for n in sizes], "k:", label="n^-1/2")
plt.xlabel("sampled pairs"); plt.ylabel("max |π_IPO − π*_ΨPO|"); plt.legend(); plt.tight_layout()""",
    ),
    (
        "md",
        """## Exercises

**4.1** The score s† of eq. (7): `pref` is [Y, Y] with pref[i, j] = P(y_i ≻ y_j), `mu` is [Y].""",
    ),
    (
        "exercise",
        "ipo.scores",
        '''def psi_scores(pref, mu):
    """s†(y) = Σ_y' μ(y') P(y ≻ y'), Nguyen 2025, eq. (7)."""
    raise NotImplementedError  # your code here''',
    ),
    (
        "md",
        """**4.2** The per-sample squared error of eq. (11), corrected: `h` [n] are the log-ratio margins h(y₁, y₂),
`c` [n] the labels (1 when y₁ wins, 2 when y₂ wins).""",
    ),
    (
        "exercise",
        "ipo.label_loss",
        '''def label_loss(h, c):
    """(h − t(c))², with the target t(c) that is 1 when y₁ wins."""
    raise NotImplementedError  # your code here''',
    ),
    (
        "md",
        """**4.3** The IPO optimum itself: the Gibbs policy (notebook 1) of the score s†, with strength β.""",
    ),
    (
        "exercise",
        "ipo.optimum",
        '''def ipo_optimum(pref, mu, ref, beta):
    """π*(y) ∝ π_ref(y) exp(s†(y)/β)."""
    raise NotImplementedError  # your code here''',
    ),
]

TREE_DRAW = """def draw(tree, ax, width, colour, title):
    # x = depth, y = leaf order; an edge's width is its probability (plotting only: a loop is fine here)
    import numpy as np
    y = np.zeros(tree.n_nodes); leaves = tree.leaves.tolist()
    y[leaves] = np.arange(len(leaves))
    for n in range(tree.n_nodes - 1, 0, -1):
        if not tree.terminal[n]:
            kids = (tree.parent == n).nonzero().squeeze(-1)
            y[n] = y[kids].mean()
    y[0] = y[(tree.parent == 0).nonzero().squeeze(-1)].mean()
    d = tree.depth.numpy()
    for n in range(1, tree.n_nodes):
        p = tree.parent[n].item()
        ax.plot([d[p], d[n]], [y[p], y[n]], color="C0", lw=0.3 + 6 * width[n].item(), alpha=0.8)
    sc = ax.scatter(d, y, c=colour.numpy(), cmap="viridis", s=18, zorder=3)
    ax.set(title=title, xlabel="depth t", yticks=[]); return sc"""

SOFT_BELLMAN = [
    (
        "md",
        """# 5. The token MDP and the soft Bellman equations

**Learning goals.** (a) See generation as a deterministic MDP whose states are prefixes and whose actions
are tokens (Rafailov et al. 2024, sec. 3.1); (b) write its KL-regularised objective (2) and the soft
Bellman equations (5)–(7); (c) solve a whole tree exactly by backward induction; (d) check that the
token-level optimum is the sequence-level (bandit) optimum of notebook 1.

With V*(s) = 0 at terminal states,

Q*(s_t, a_t) = r(s_t, a_t) + β log π_ref(a_t|s_t) + V*(s_{t+1}),    eq. (7)

V*(s_t) = β log Σ_a exp(Q*(s_t, a)/β),    eq. (6)

π*(a_t|s_t) = exp((Q*(s_t, a_t) − V*(s_t))/β),    eq. (5).

`tokenmdp.soft_solve` does this level by level with tensor operations; a `TokenTree` stores each per-edge
quantity at the child node.""",
    ),
    (
        "code",
        setup("tokenmdp", "toybandit")
        + """
tree = tm.random_tree(3, 3, eos=0, generator=torch.Generator().manual_seed(5))
reward = torch.randn(tree.n_nodes, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
beta = 0.5
sol = tm.soft_solve(tree, reward, beta)
R, seq_ref = tm.as_bandit(tree, reward)     # the same problem over complete sequences
tree, sol.v[0] - tb.log_partition(R, seq_ref, beta)   # V*(s₀) = β log Z of the sequence bandit""",
    ),
    (
        "md",
        """**The optimal policy on the tree.** Left: π_ref; right: π*. Edge width is the probability of the token
given its state, colour is V* (left: the reward-to-go is ignored by π_ref; right: π* steers towards states
of high V*).""",
    ),
    (
        "code",
        TREE_DRAW
        + """
fig, (a, b) = plt.subplots(1, 2, figsize=(9, 4), sharey=True)
draw(tree, a, tree.log_ref.exp(), sol.v, "π_ref (width), V* (colour)")
sc = draw(tree, b, sol.log_policy.exp(), sol.v, "π* (width), V* (colour)")
fig.colorbar(sc, ax=b); fig.tight_layout()""",
    ),
    (
        "md",
        """**β between the hard maximum and the average.** As β → 0, V*(s₀) tends to the best return max_y R(y); as
β → ∞, to the reference average E_{π_ref}[R].""",
    ),
    (
        "code",
        """betas = torch.logspace(-2, 2, 40, dtype=torch.float64)
v0 = torch.stack([tm.soft_solve(tree, reward, b).v[0] for b in betas])
plt.figure(figsize=(5, 3)); plt.semilogx(betas, v0, label="V*(s₀)")
plt.axhline(R.max(), color="C3", ls="--", label="max R"); plt.axhline((seq_ref * R).sum(), color="k", ls=":", label="E_ref[R]")
plt.xlabel("β"); plt.legend(fontsize=8); plt.tight_layout()""",
    ),
    (
        "md",
        """## Exercises

The exercises work on flat tensors taken from such trees.

**5.1** Eq. (6) for a batch of states: `q` is [S, A], the Q* of every action of S states. Use
`torch.logsumexp`.""",
    ),
    (
        "exercise",
        "soft_bellman.value",
        '''def soft_value(q, beta):
    """V*(s) = β log Σ_a exp(Q*(s, a)/β), Rafailov et al. 2024, eq. (6)."""
    raise NotImplementedError  # your code here''',
    ),
    (
        "md",
        """**5.2** Eq. (7) for a batch of edges (s, a): the reward, log π_ref(a|s) and V*(s·a) (0 at terminal states).""",
    ),
    (
        "exercise",
        "soft_bellman.q",
        '''def soft_q(reward, log_ref, v_next, beta):
    """Q*(s, a) = r(s, a) + β log π_ref(a|s) + V*(s·a), eq. (7)."""
    raise NotImplementedError  # your code here''',
    ),
    (
        "md",
        """**5.3** Eq. (5), in log space, for a batch of edges: Q*(s, a) and the value V*(s) of the edge's state.""",
    ),
    (
        "exercise",
        "soft_bellman.policy",
        '''def log_policy(q, v_state, beta):
    """log π*(a|s) = (Q*(s, a) − V*(s))/β, eq. (5)."""
    raise NotImplementedError  # your code here''',
    ),
]

Q_FUNCTION = [
    (
        "md",
        """# 6. A language model as a Q-function

**Learning goals.** (a) Read any next-token logits as a soft Q-function: π = softmax(Q/β) is the optimal
policy of *some* per-token reward (Rafailov et al. 2024, Lemma 1); (b) recover that reward by inverting
eq. (7); (c) see that the logits' free constant per state is potential-based reward shaping (Definition 1),
which changes r and Q but not the policy (Theorem 1).

Inverting eq. (7) with V(s) = β log Σ_a exp(Q(s, a)/β) from eq. (6):

r(s, a) = Q(s, a) − β log π_ref(a|s) − V(s·a),    (Lemma 1, V = 0 at terminal states)

and shaping with a potential Φ (0 at terminal states):

r'(s_t, a_t) = r(s_t, a_t) + Φ(s_{t+1}) − Φ(s_t),    Definition 1.

We use an exact tabular tree whose edges carry arbitrary "logits"; a real model's logits expanded over a
few tokens form the same kind of tree (see the lab page of the docs).""",
    ),
    (
        "code",
        setup("tokenmdp")
        + """
tree = tm.random_tree(3, 3, eos=0, generator=torch.Generator().manual_seed(7))
beta = 0.5
logits = 2 * torch.randn(tree.n_nodes, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
r = tm.reward_from_q(tree, beta * logits, beta)          # Q = β·logits
sol = tm.soft_solve(tree, r, beta)
# the solved Q* is the logits again, and π* = softmax(logits) per state
(sol.q - beta * logits)[1:].abs().max()""",
    ),
    (
        "md",
        """**Shaping.** Add a per-state constant to all logits of that state's children (the softmax ignores it):
the reward changes — by potential shaping — and the policy does not. `tm.recover_potential` finds the Φ
and leaves a zero residual; a perturbation that is not shaping leaves a residual.""",
    ),
    (
        "code",
        """shift = torch.randn(tree.n_nodes, generator=torch.Generator().manual_seed(9), dtype=torch.float64).masked_fill(tree.terminal, 0.0)
r_shift = tm.reward_from_q(tree, beta * logits + shift[tree.parent.clamp(min=0)], beta)
phi, residual = tm.recover_potential(tree, r, r_shift)
noise = r + 0.3 * torch.randn(tree.n_nodes, generator=torch.Generator().manual_seed(10), dtype=torch.float64)
_, residual_noise = tm.recover_potential(tree, r, noise)
sol_shift = tm.soft_solve(tree, r_shift, beta)
e = torch.arange(1, tree.n_nodes)
fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3))
a.plot(e, r[e], "o", ms=3, label="r"); a.plot(e, r_shift[e], "x", ms=4, label="r' (shaped)")
a.set(xlabel="edge", ylabel="reward", title="the rewards differ"); a.legend(fontsize=7)
b.plot(e, sol.log_policy[e].exp(), "o", ms=3, label="π* of r"); b.plot(e, sol_shift.log_policy[e].exp(), "x", ms=4, label="π* of r'")
b.set(xlabel="edge", ylabel="π*(a|s)", title="the policies do not"); b.legend(fontsize=7); fig.tight_layout()
residual.abs().max(), residual_noise.abs().max()""",
    ),
    (
        "code",
        """fig, ax = plt.subplots(figsize=(5, 3))
ax.semilogy(e, residual_noise[e].abs() + 1e-18, "C3.", label="r + noise")
ax.semilogy(e, residual[e].abs() + 1e-18, "C0.", label="r shaped")
ax.set(xlabel="edge", ylabel="|residual| + 1e-18", title="is r' a shaping of r? (recover_potential)"); ax.legend(fontsize=7); fig.tight_layout()""",
    ),
    (
        "md",
        """## Exercises

**6.1** Lemma 1 on a batch of edges: the reward of an edge from its Q, log π_ref(a|s) and V(s·a).""",
    ),
    (
        "exercise",
        "q_function.reward",
        '''def reward_from_q(q, log_ref, v_next, beta):
    """r(s, a) = Q(s, a) − β log π_ref(a|s) − V(s·a), Lemma 1."""
    raise NotImplementedError  # your code here''',
    ),
    (
        "md",
        """**6.2** Definition 1 on a batch of edges: Φ of the edge's state (`phi_state`) and of the state it leads to
(`phi_next`).""",
    ),
    (
        "exercise",
        "q_function.shaping",
        '''def shape(reward, phi_state, phi_next):
    """r'(s_t, a_t) = r(s_t, a_t) + Φ(s_{t+1}) − Φ(s_t), Definition 1."""
    raise NotImplementedError  # your code here''',
    ),
    (
        "md",
        """**6.3** (no checker) Shape with a Φ that is *not* 0 at terminal states (`tm.shape_reward(..., strict=False)`):
what happens to the optimal policy, and why does Theorem 1 need the condition?""",
    ),
]

CREDIT = [
    (
        "md",
        """# 7. Credit assignment and search

**Learning goals.** (a) Read β log π*(a_t|s_t)/π_ref(a_t|s_t) as a per-token reward (Rafailov et al. 2024,
eq. (11)) and see, by eq. (10), that it is the reward shaped by V*: it spreads a reward paid only at the
end over the tokens that earned it; (b) see that search on r + β log π_ref needs the frontier value V*,
eq. (12), and is then likelihood search on π*, eq. (13); (c) see myopic search go wrong.

β log π*(a_t|s_t)/π_ref(a_t|s_t) = r(s_t, a_t) + V*(s_{t+1}) − V*(s_t),    eq. (10).

max_{a₀…a_K} Σ_t [r(s_t, a_t) + β log π_ref(a_t|s_t)] + V*(s_{K+1})    eq. (12)
= V*(s₀) + max_{a₀…a_K} Σ_t β log π*(a_t|s_t)    (eq. (13): likelihood search on π*; the source prints
the constant as −V*(s₀), which does not move the argmax).""",
    ),
    (
        "code",
        setup("tokenmdp")
        + """
tree = tm.random_tree(3, 4, eos=0, generator=torch.Generator().manual_seed(11))
beta = 0.5
# a reward paid only at the end of a sequence (the sequence-level reward of eq. (3))
reward = torch.randn(tree.n_nodes, generator=torch.Generator().manual_seed(12), dtype=torch.float64).masked_fill(~tree.terminal, 0.0)
sol = tm.soft_solve(tree, reward, beta)
credit = tm.implicit_rewards(tree, sol.log_policy, beta)
# eq. (10): credit = r + V*(s') − V*(s), edge by edge
(credit - (reward + sol.v - sol.v[tree.parent.clamp(min=0)]))[1:].abs().max()""",
    ),
    (
        "md",
        """**Credit along sequences.** For the best and the worst complete sequence, the per-token implicit reward:
the final reward is paid early, at the token that decided it.""",
    ),
    (
        "code",
        """R, _ = tm.as_bandit(tree, reward)
leaves = tree.leaves
def path(n):
    out = []
    while n > 0:
        out.append(n)
        n = tree.parent[n].item()
    return out[::-1]
fig, axes = plt.subplots(1, 2, figsize=(8, 3), sharey=True)
for ax, n, name in [(axes[0], leaves[R.argmax()].item(), "best"), (axes[1], leaves[R.argmin()].item(), "worst")]:
    p = path(n)
    ax.bar(range(len(p)), credit[p], color="C2", label="β log π*/π_ref")
    ax.bar(range(len(p)), reward[p], width=0.3, color="k", label="r (terminal only)")
    ax.set(title=f"{name} sequence, R = {reward[p].sum():.2f}", xlabel="token t"); ax.legend(fontsize=7)
fig.tight_layout()""",
    ),
    (
        "md",
        """**Search.** Value-guided search (12) on r + β log π_ref with V* at the frontier picks the same prefix as
likelihood search on π* (13) at every depth; the myopic one (no V*) does not.""",
    ),
    (
        "code",
        """rows, score12 = [], tm.prefix_sum(tree, reward + beta * tree.log_ref) + sol.v
for k in range(1, tree.max_depth + 1):
    guided = tm.best_prefix(tree, reward + beta * tree.log_ref, k, value=sol.v).node
    likely = tm.best_prefix(tree, beta * sol.log_policy, k).node
    myopic = tm.best_prefix(tree, reward + beta * tree.log_ref, k).node
    rows.append((guided, likely, myopic))
ks = range(1, tree.max_depth + 1)
plt.figure(figsize=(5, 3))
plt.plot(ks, [score12[node].item() for node, _, _ in rows], "o-", label="value-guided (12)")
plt.plot(ks, [score12[node].item() for _, node, _ in rows], "x--", label="likelihood on π* (13)")
plt.plot(ks, [score12[node].item() for _, _, node in rows], "s:", label="myopic (no V*)")
plt.xlabel("search depth K"); plt.ylabel("objective (12) of the chosen prefix"); plt.legend(fontsize=7); plt.tight_layout()
rows""",
    ),
    (
        "md",
        """## Exercises

**7.1** The per-token credit of eq. (11), for a batch of edges.""",
    ),
    (
        "exercise",
        "credit.token_rewards",
        '''def token_rewards(log_policy, log_ref, beta):
    """β log π(a_t|s_t)/π_ref(a_t|s_t), Rafailov et al. 2024, eq. (11)."""
    raise NotImplementedError  # your code here''',
    ),
    (
        "md",
        """**7.2** The objective (12) of a batch of prefixes: the prefix's summed reward, its summed log π_ref, and
V* at its last state. (The checker's exact answer comes from eq. (13), a different route.)""",
    ),
    (
        "exercise",
        "credit.search_score",
        '''def search_score(prefix_return, prefix_log_ref, v_frontier, beta):
    """Σ_t [r + β log π_ref] + V*(s_{K+1}), Rafailov et al. 2024, eq. (12)."""
    raise NotImplementedError  # your code here''',
    ),
    (
        "md",
        """**7.3** (no checker) Make the reward dense (nonzero on every edge). Does the credit still differ from the
reward? Next, and last: notebook 8, which `loss_type` to use, from the loss atlas.""",
    ),
]

WHICH_LOSS = [
    (
        "md",
        """# 8. Which `loss_type` should I use?

**Learning goals.** (a) Write the population objective that a pairwise preference loss minimises when
trained to convergence, Nguyen 2025, eq. (6), and find its exact minimiser π̂ with `tb.minimise_loss`;
(b) read the loss atlas: which of TRL's `loss_type`s reaches which target — π* of eq. (1), the IPO
optimum, or neither — in which world, and which has no finite minimiser at all; (c) undo label noise with
rDPO's unbiased loss (TRL's `robust`) and see why the `label_smoothing` of `sigmoid` does not; (d) see
that TRL's token-averaged losses (`sigmoid_norm`, `ipo`) move a response |y| times as far from π_ref as
the summed ones.

A loss ℓ(q(y_w), q(y_l)) of the log-ratios q = log π/π_ref, trained on infinitely many pairs drawn from
μ × μ and labelled by P, minimises

L(π) = Σ_{y_w, y_l} W(y_w, y_l) ℓ(q(y_w), q(y_l)),    W(y_w, y_l) = 2 μ(y_w) μ(y_l) P(y_w ≻ y_l),

Nguyen 2025, eq. (6) with DPO's ℓ; the atlas puts each of TRL's losses in its place. Its minimiser π̂ is
where training converges with unlimited data and a tabular policy: a property of the loss, not of the
optimiser. The atlas (`tb.atlas`) minimises L exactly for 21 losses on six worlds and compares π̂ with
the targets the losses claim:

π*(y) = π_ref(y) e^{r(y)/β} / Z,    Nguyen 2025, eq. (1), where a Bradley–Terry reward r exists;

π_IPO(y) = π_ref(y) e^{p(y)/τ} / Z_τ,  p(y) = E_{y'∼μ}[P(y ≻ y')],    Azar et al. 2023, eq. (7) with
Ψ = identity (TRL's `ipo` takes τ = `beta`);

and, where no reward exists, the maximal lottery ML, a distribution that no response beats on average.""",
    ),
    (
        "code",
        setup("toybandit")
        + """
torch.set_num_threads(1)   # thousands of tiny Newton steps: threads only add overhead
beta = 0.5
LOSS = {loss.name: loss for loss in tb.atlas.LOSSES}   # TRL's losses, configured as the atlas runs them
WORLD = {w.name: w for w in tb.atlas.worlds()}          # six exact worlds with four to six responses
for name, w in WORLD.items():
    print(f"{name:14s} {w.description}")
w = WORLD["bradley_terry"]
pairs = tb.population_pairs(w.pref, w.mu)   # every ordered pair, with its weight W = 2μμP
fit = tb.minimise_loss(lambda c, r: tb.losses.dpo(c, r, beta), pairs, w.ref)   # TRL's "sigmoid"
star = tb.optimal_policy(w.reward, w.ref, beta)
fit.verdict, (fit.policy - star).abs().max()""",
    ),
    (
        "md",
        """**The atlas.** Every loss on every world at β = 0.5. Each cell is the distance from π̂ to
the world's target, named in the column; yellow is exact. ∅: no finite minimiser — the loss keeps
falling as some π(y) → 0, so training never settles; \\*: a non-convex loss, whose minimiser is the one
that descent from π_ref reaches; n.c.: not certified.""",
    ),
    (
        "code",
        """entries = tb.atlas.atlas(beta)
by = {(e.loss, e.world): e for e in entries}
losses, worlds = list(LOSS), list(WORLD)
def distance(e):   # to π* where it exists; to π_IPO (deterministic); from the maximal lottery (intransitive)
    kl = {"deterministic": e.kl_to_ipo, "intransitive": e.kl_to_lottery}.get(e.world, e.kl_to_optimum)
    return kl if e.finite and e.converged else float("nan")
grid = torch.tensor([[distance(by[n, x]) for x in worlds] for n in losses]).clamp(min=1e-12).log10()
fig, ax = plt.subplots(figsize=(7, 6.5))
im = ax.imshow(grid, cmap="viridis_r", vmin=-12, vmax=0.5, aspect="auto"); ax.set_facecolor("0.3")
for i, n in enumerate(losses):
    for j, x in enumerate(worlds):
        e, d = by[n, x], distance(by[n, x])
        text = "n.c." if not e.converged else "∅" if not e.finite else ("0" if d < 1e-12 else f"{d:.2g}") + "*" * e.local
        ax.text(j, i, text, ha="center", va="center", fontsize=7, color="k" if grid[i, j] > -4 else "w")
ax.set_xticks(range(6), ["Bradley–Terry\\nKL(π̂‖π*)", "noisy\\nKL(π̂‖π*)", "μ ≠ π_ref\\nKL(π̂‖π*)",
                         "deterministic\\nKL(π̂‖π_IPO)", "intransitive\\nKL(ML‖π̂)", "token tree\\nKL(π̂‖π*)"], fontsize=7)
ax.set_yticks(range(len(losses)), losses, fontsize=7); ax.xaxis.tick_top()
fig.colorbar(im, ax=ax, label="log10 KL (−12: exact)", shrink=0.6); fig.tight_layout()""",
    ),
    (
        "md",
        """**Reading it.** `sigmoid` (DPO) is exact wherever a Bradley–Terry reward exists and the labels are
clean, whatever μ (the μ ≠ π_ref column) and whatever the lengths (the token tree: it sums log-ratios
over tokens); it is off on noisy labels and has no minimiser on deterministic ones. `ipo` aims
elsewhere: exact for π_IPO where every sigmoid-type loss has no minimiser, but 0.29 from π* on
Bradley–Terry labels — p/τ is a win rate, not r/β. `robust` is exact on the noisy world, whose flip
rate its `label_smoothing` matches, and off everywhere else. `hinge` has a minimiser in every world and
is exact in none. No loss reaches the maximal lottery of the intransitive world, and neither APO loss
(`apo_zero`, `apo_down`) has a certified minimiser in any world: both push some π(y) to 0.

Two worlds side by side: with Bradley–Terry labels `sigmoid` lands on π*, `hinge` on a sharper policy
(its loss is 0 once βh ≥ 1, so the margin, not P, pins π̂), and `ipo` on its own, flatter target. With
a total order `sigmoid` has no minimiser — π(y0) → 1; hatched, the last iterate — while `ipo` still
lands on π_IPO.""",
    ),
    (
        "code",
        """bt, det = WORLD["bradley_terry"], WORLD["deterministic"]
fig, axes = plt.subplots(1, 2, figsize=(9, 3.2), sharey=True)
x = torch.arange(4)
for ax, w, target, name in [(axes[0], bt, star, "π*"), (axes[1], det, tb.psi_optimal_policy(det.pref, det.mu, det.ref, beta), "π_IPO")]:
    ax.bar(x - 0.3, w.ref, 0.15, color="k", label="π_ref")
    ax.bar(x - 0.15, target, 0.15, color="C3", label=f"target {name}")
    for k, n in enumerate(["sigmoid", "hinge", "ipo"]):
        e = by[n, w.name]
        note = " (∅: no minimiser)" if not e.finite else " (one of many minimisers)" if e.unique is False else ""
        ax.bar(x + 0.15 * k, e.policy, 0.15, color=f"C{k}", hatch="" if e.finite else "//", label=n + note)
    ax.set(title=w.description, xticks=x, xticklabels=w.responses); ax.legend(fontsize=7)
axes[0].set_ylabel("π̂(y), β = τ = 0.5"); fig.tight_layout()""",
    ),
    (
        "md",
        """**Noisy labels.** If each label is flipped with probability ε, the pairs are labelled by a noisy P_ε
(exercise 8.1), and `sigmoid` fits P_ε: a flatter policy than π*. TRL has two knobs named
`label_smoothing`. In `robust` (rDPO, Chowdhury et al. 2024) it is the ε of an unbiased loss ℓ̃,

(1 − ε) ℓ̃(h) + ε ℓ̃(−h) = ℓ(h),    ℓ(h) = −log σ(βh),  h = q(y_w) − q(y_l),

so that in expectation over the flips the loss is the clean one (exercise 8.2) and π̂ = π*. In `sigmoid`
it is conservative DPO (cDPO), (1 − ε)ℓ(h) + εℓ(−h): it smooths the labels further, and π̂ moves away
from π*. Right: KL(π̂‖π*) as each knob moves, in the atlas's noisy world (true ε = 0.1).""",
    ),
    (
        "code",
        """w = WORLD["noisy"]
pairs = tb.population_pairs(w.pref, w.mu)
def minimiser(loss):
    return tb.minimise_loss(loss, pairs, w.ref).policy
def smoothed(loss, eps):   # the loss at strength β with label_smoothing = eps
    return lambda c, r: loss(c, r, beta, label_smoothing=eps)
smoothing = [0.0, 0.025, 0.05, 0.075, 0.1, 0.125, 0.15, 0.2, 0.25]
robust = [tb.kl_divergence(minimiser(smoothed(tb.losses.robust, s)), star) for s in smoothing]
cdpo = [tb.kl_divergence(minimiser(smoothed(tb.losses.dpo, s)), star) for s in smoothing]
fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.2))
a.bar(x - 0.3, star, 0.2, color="C3", label="π* (of the clean labels)")
a.bar(x - 0.1, by["sigmoid", "noisy"].policy, 0.2, color="C0", label="sigmoid")
a.bar(x + 0.1, by["robust", "noisy"].policy, 0.2, color="C1", label="robust, label_smoothing = ε")
a.bar(x + 0.3, minimiser(smoothed(tb.losses.dpo, 0.1)), 0.2, color="C2", label="sigmoid, label_smoothing = ε")
a.set(title=w.description, xticks=x, xticklabels=w.responses, ylabel="π̂(y)"); a.legend(fontsize=7)
b.plot(smoothing, robust, "o-", color="C1", label="robust"); b.plot(smoothing, cdpo, "s-", color="C2", label="sigmoid (cDPO)")
b.axvline(tb.atlas.NOISE, color="k", ls=":", lw=0.8)
b.set(xlabel="label_smoothing", ylabel="KL(π̂ ‖ π*)", title="the true flip rate is ε = 0.1"); b.legend(fontsize=7); fig.tight_layout()""",
    ),
    (
        "md",
        """`robust` is exact only at the true ε, and overestimating ε costs more than underestimating it.

**Token-averaged losses.** TRL's `sigmoid_norm` and `ipo` divide each log-ratio by the response's length
before comparing, ℓ(q(y_w)/|y_w|, q(y_l)/|y_l|). The argument of notebook 3 then fixes u = q/|y|
instead of q: on Bradley–Terry labels β(u(y_i) − u(y_j)) = r_i − r_j, so

log π̂(y) = log π_ref(y) + |y|·(r(y)/β + c),    c such that Σ_y π̂(y) = 1    (exercise 8.3),

against log π*(y) = log π_ref(y) + r(y)/β − log Z (and for `ipo`, |y|·(p(y)/τ + c) against the
paper's p(y)/τ − log Z_τ). Each response moves |y| times as far from π_ref: in the token tree ("." is
the end of the sequence) the long, good `aa.` gains and the long, bad `ab.` all but vanishes. The best
sequence is also one of the longest, so the mean length grows, for `sigmoid_norm` against π* and for
TRL's `ipo` against the paper's IPO (the atlas's `ipo (summed)`, which TRL does not offer).""",
    ),
    (
        "code",
        """w = WORLD["token_tree"]
betas = [0.1, 0.2, 0.5, 1.0, 2.0, 5.0]
def mean_length(p):
    return (p * w.lengths).sum().item()
curves = [
    ("π* (sigmoid: summed)", "C3", "-", [mean_length(tb.optimal_policy(w.reward, w.ref, b)) for b in betas]),
    ("sigmoid_norm (token-averaged)", "C3", "--", [tb.atlas.entry(LOSS["sigmoid_norm"], w, b).mean_length for b in betas]),
    ("π_IPO (the paper's IPO: summed)", "C2", "-", [mean_length(tb.psi_optimal_policy(w.pref, w.mu, w.ref, b)) for b in betas]),
    ("ipo (TRL: token-averaged)", "C2", "--", [tb.atlas.entry(LOSS["ipo"], w, b).mean_length for b in betas]),
]
fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.4))
y = torch.arange(len(w.responses))
a.bar(y - 0.27, w.ref, 0.27, color="k", label="π_ref")
a.bar(y, tb.optimal_policy(w.reward, w.ref, beta), 0.27, color="C3", label="π* (sigmoid)")
a.bar(y + 0.27, by["sigmoid_norm", "token_tree"].policy, 0.27, color="C0", label="sigmoid_norm")
a.set_xticks(y, [f"{s}\\n|y| = {n:.0f}\\nr = {r:g}" for s, n, r in zip(w.responses, w.lengths.tolist(), w.reward.tolist(), strict=True)], fontsize=7)
a.set(ylabel="π̂(y)", title="the token-tree world, β = 0.5"); a.legend(fontsize=7)
for name, colour, style, v in curves:
    b.semilogx(betas, v, marker="o", ms=3, color=colour, ls=style, label=name)
b.axhline(mean_length(w.ref), color="k", ls=":", label="π_ref")
b.set(xlabel="β (= τ)", ylabel="E_π̂ |y| (tokens)", title="mean length of the minimiser"); b.legend(fontsize=7); fig.tight_layout()""",
    ),
    (
        "md",
        """**Which `loss_type`, then?** What these exact worlds say (β = τ = 0.5; `python -m toybandit.atlas`
prints the whole table, and `--out DIR` writes it at three β with a β sweep):

| your labels | the target | use | not |
|---|---|---|---|
| from a reward, clean | π* | `sigmoid` | `sigmoid_norm` when lengths differ; `hinge` |
| from a reward, flipped at a known rate ε | π* | `robust` with `label_smoothing=ε` | `sigmoid` with `label_smoothing` (cDPO) |
| (nearly) deterministic | a finite policy | `ipo` (its target is π_IPO, not π*) | any sigmoid-type loss (∅) |
| intransitive | the maximal lottery | none of the atlas's pairwise losses | — |

The non-convex losses (\\*) end where descent from π_ref takes them, and the APO losses do not settle in
any of the six worlds.""",
    ),
    (
        "md",
        """## Exercises

**8.1** The noisy world: each label, drawn from P, is then flipped with probability ε. Write P_ε[i, j], the
probability that the recorded label says y_i ≻ y_j. `pref` is [Y, Y] with pref[i, j] = P(y_i ≻ y_j),
`eps` a float in [0, ½).""",
    ),
    (
        "exercise",
        "which_loss.noisy_preference",
        '''def noisy_preference(pref, eps):
    """P_ε[i, j]: the probability that a label, flipped with probability ε, says y_i ≻ y_j."""
    raise NotImplementedError  # your code here''',
    ),
    (
        "md",
        """**8.2** rDPO's loss per pair: the ℓ̃ with (1 − ε)ℓ̃(h) + εℓ̃(−h) = ℓ(h) for every h, where
ℓ(h) = −log σ(βh) and h = q(y_w) − q(y_l). (Write the same equation at −h and solve the two for ℓ̃(h).)
This is TRL's `loss_type="robust"` with `label_smoothing=eps`; the inputs are [n] tensors.""",
    ),
    (
        "exercise",
        "which_loss.robust",
        '''def robust_loss(chosen_logratios, rejected_logratios, beta, eps):
    """ℓ̃(h), whose expectation over labels flipped with probability ε is ℓ(h) = −log σ(βh)."""
    raise NotImplementedError  # your code here''',
    ),
    (
        "md",
        """**8.3** The minimiser of TRL's `sigmoid_norm` on Bradley–Terry labels with μ of full support:
log π̂(y) = log π_ref(y) + |y|·(r(y)/β + c). Find c — Σ_y π_ref(y) e^{|y|(r(y)/β + c)} increases with c
and equals 1 somewhere in [−max r/β, −min r/β], so `scipy.optimize.brentq` finds it — and return π̂,
shape [Y]. `lengths` are the token counts |y| ≥ 1 as float64. The checker's exact answer is the
minimiser of the population loss itself, found by `tb.minimise_loss`: another route.""",
    ),
    (
        "exercise",
        "which_loss.length_normalised",
        '''def length_normalised_optimum(reward, ref, lengths, beta):
    """π̂(y) = π_ref(y) exp(|y|·(r(y)/β + c)), with c such that π̂ sums to 1."""
    raise NotImplementedError  # your code here''',
    ),
    (
        "md",
        """**8.4** (no checker) Show that rDPO is DPO minus a linear term, ℓ̃(h) = ℓ(h) − ε/(1 − 2ε)·βh, and hence
convex like `sigmoid`. What does that term do when `label_smoothing` exceeds the true ε (the right end of
the sweep above)? This is the last notebook of the course.""",
    ),
]

NOTEBOOKS = {
    "01_kl_bandit": KL_BANDIT,
    "02_bradley_terry": BRADLEY_TERRY,
    "03_deriving_dpo": DPO,
    "04_psi_preferences_and_ipo": IPO,
    "05_soft_bellman": SOFT_BELLMAN,
    "06_language_model_as_q_function": Q_FUNCTION,
    "07_credit_and_search": CREDIT,
    "08_which_loss": WHICH_LOSS,
}


def exercises(name: str) -> list[str]:
    """The exercise ids of a notebook, in order."""
    return [cell[1] for cell in NOTEBOOKS[name] if cell[0] == "exercise"]


def _exercise_sources(eid: str, stub: str, solutions: bool) -> list[str]:
    from course import EXERCISES

    fn = EXERCISES[eid].name
    if not solutions:
        return [f"{stub}\n\ncheck({fn}, {eid!r})"]
    return [
        f"{stub}\n\nfrom course.solutions import {fn}  # the reference solution\ncheck({fn}, {eid!r})",
        f"from course import EXERCISES  # a known wrong answer\ncheck(EXERCISES[{eid!r}].pitfalls[0].fn, {eid!r})",
    ]


def notebook(name: str, *, solutions: bool = False):
    """The notebook ``name``, unexecuted: with the stubs, or with the solutions and a wrong answer."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    for cell in NOTEBOOKS[name]:
        if cell[0] == "md":
            nb.cells.append(nbformat.v4.new_markdown_cell(cell[1]))
        elif cell[0] == "code":
            nb.cells.append(nbformat.v4.new_code_cell(cell[1]))
        else:
            nb.cells += [
                nbformat.v4.new_code_cell(s) for s in _exercise_sources(cell[1], cell[2], solutions)
            ]
    for k, cell in enumerate(nb.cells):
        cell.id = f"cell-{k}"  # stable ids: a rebuild changes only what the code changed
    return nb


def execute(nb, timeout: int = 120):
    NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        record_timing=False,  # no wall-clock stamps in the committed notebooks
        resources={"metadata": {"path": str(HERE)}},
    ).execute()
    for cell in nb.cells:  # printed text arrives in timing-dependent chunks: join them
        merged = []
        for out in cell.get("outputs", []):
            if (
                merged
                and out.output_type == "stream"
                and merged[-1].output_type == "stream"
                and (merged[-1].name == out.name)
            ):
                merged[-1].text += out.text
            else:
                merged.append(out)
        if cell.cell_type == "code":
            cell.outputs = merged
    return nb


def render(name: str, nb) -> tuple[str, dict[str, bytes]]:
    """The docs page of an executed notebook: markdown with code, text outputs and figures."""
    parts, images = [], {}
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            parts.append(cell.source)
            continue
        parts.append(f"```python\n{cell.source}\n```")
        for out in cell.outputs:
            if out.output_type == "stream":
                parts.append(f"```text\n{out.text.rstrip()}\n```")
            elif out.output_type in ("execute_result", "display_data"):
                data = out.get("data", {})
                if "image/png" in data:
                    fig = f"{name}-{len(images) + 1}.png"
                    images[fig] = base64.b64decode(data["image/png"])
                    parts.append(f"![figure {len(images)}](img/{fig})")
                elif "text/plain" in data:
                    parts.append(f"```text\n{data['text/plain'].rstrip()}\n```")
    head = (
        f"*Rendered from `notebooks/{name}.ipynb` with its outputs; run it yourself with "
        "`jupyter lab notebooks/` to do the exercises.*"
    )
    return "\n\n".join([parts[0], head, *parts[1:]]) + "\n", images


def build(name: str) -> Path:
    nb = execute(notebook(name))
    path = HERE / f"{name}.ipynb"
    nbformat.write(nb, path)
    page, images = render(name, nb)
    (DOCS / "img").mkdir(parents=True, exist_ok=True)
    (DOCS / f"{name}.md").write_text(page, encoding="utf-8")
    for fig, data in images.items():
        (DOCS / "img" / fig).write_bytes(data)
    return path


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parent))  # course/ from this checkout
    for name in sys.argv[1:] or NOTEBOOKS:
        print(build(name))
