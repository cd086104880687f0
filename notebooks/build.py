"""Write the teaching notebooks from their cell sources and execute them in place (outputs committed).

    python notebooks/build.py            # all three
    python notebooks/build.py NAME ...   # some of them

Needs the ``notebooks`` and ``lm`` extras. The test suite executes the committed notebooks again.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent

IPO = [
    (
        "md",
        """# IPO from first principles

Nguyen 2025 (*DPO vs IPO*) reads IPO as enforcing DPO's optimality condition (5) for a score that never
has to be learned: s†(y) = E_{y'∼μ}[P(y ≻ y')], eq. (7). This notebook checks each step of that argument
on an exact, small preference world — including a preference no reward can explain.""",
    ),
    (
        "code",
        """import torch, toybandit as tb
torch.set_printoptions(precision=4)
g = torch.Generator().manual_seed(0)
pref = tb.random_preference(4, generator=g, kind="cyclic")   # y0 ≻ y1 ≻ y2 ≻ y0
mu = torch.softmax(torch.randn(4, generator=g, dtype=torch.float64), -1)
ref = torch.softmax(torch.randn(4, generator=g, dtype=torch.float64), -1)
beta = 0.5
pref""",
    ),
    (
        "md",
        """**Eq. (7).** The score s†: how often y beats a response drawn from μ. It exists for any P, transitive
or not.""",
    ),
    (
        "code",
        """score = tb.psi_scores(pref, mu)          # Ψ = identity
score, tb.psi_optimal_policy(pref, mu, ref, beta)""",
    ),
    (
        "md",
        """**Lemma 3.1.** The regression on the unknown target (9) and on the preference itself (10) differ by a
constant — the same for every policy — so they have the same minimiser.""",
    ),
    (
        "code",
        """policies = [torch.softmax(2 * torch.randn(4, generator=g, dtype=torch.float64), -1) for _ in range(5)]
gaps = [(tb.ipo_target_objective(p, pref, mu, ref, beta)
         - tb.ipo_preference_objective(p, pref, mu, ref, beta)).item() for p in policies]
gaps""",
    ),
    (
        "md",
        """The assumption that matters: the pairs must come from the same μ that defines s†. Draw them from
another ν and the difference moves with the policy:""",
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
        """**Eq. (11) as printed** regresses h on c − 1, which is 0 when y₁ wins: the target is reversed. The
corrected target is 2 − c = 𝟙[y₁ ≻ y₂]; then (11) = (10) + E[v(1 − v)] and (11) = (12) + ¼:""",
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
        """**Eq. (12) from data.** IPO's loss on sampled pairs, minimised exactly, approaches the ΨPO optimum as
the sample grows:""",
    ),
    (
        "code",
        """import matplotlib.pyplot as plt
star = tb.psi_optimal_policy(pref, mu, ref, beta)
sizes = [30, 100, 300, 1000, 3000, 10000]
errors = []
for n in sizes:
    data = tb.sample_preferences(pref, mu, n, torch.Generator().manual_seed(n))
    fitted = tb.fit_policy(data.chosen, data.rejected, ref, "ipo", tau=beta)
    errors.append((fitted - star).abs().max().item())
plt.figure(figsize=(4.5, 3)); plt.loglog(sizes, errors, "o-"); plt.loglog(sizes, [1 / n ** 0.5 for n in sizes], "k:", label="n^-1/2")
plt.xlabel("sampled pairs"); plt.ylabel("max |π_IPO − π*_ΨPO|"); plt.legend(); plt.tight_layout()""",
    ),
]

QFUNCTION = [
    (
        "md",
        """# Your language model is a Q-function

Rafailov et al. 2024 read any language model's logits as an optimal soft Q-function: π = softmax(Q/β)
with Q = β·logits is the optimal policy of *some* per-token reward (Lemma 1), which is recovered by
inverting the soft Bellman equation (7). Here on a real `transformers` model (tiny, random, built from
a config) — the same code runs on any checkpoint.""",
    ),
    (
        "code",
        """import warnings
warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm, imported by transformers
import torch, tokenmdp as tm
from tokenmdp import lm
from transformers import GPT2Config, GPT2LMHeadModel
config = GPT2Config(vocab_size=32, n_positions=16, n_embd=32, n_layer=2, n_head=2, bos_token_id=1, eos_token_id=1)
torch.manual_seed(0)
policy, ref = GPT2LMHeadModel(config).eval().double(), GPT2LMHeadModel(config).eval().double()
beta = 0.2
ids = torch.randint(2, 32, (2, 10), generator=torch.Generator().manual_seed(1))
completion = torch.zeros_like(ids); completion[:, 4:] = 1""",
    ),
    (
        "md",
        """**Eq. (5).** Q = β·logits and V = β·logsumexp(logits) give back the model's log-probabilities:""",
    ),
    (
        "code",
        """view = lm.q_values(policy, ids, None, beta)
((view.q - view.v) / beta - lm.token_logprobs(policy, ids)).abs().max()""",
    ),
    (
        "md",
        """**Lemma 1 on text.** The implied reward r_t = Q(s_t, a_t) − β log π_ref(a_t|s_t) − V(s_{t+1}) (V = 0 at the
end) telescopes as in sec. 4.1: Σ r = V(s_first) + Σ β log π/π_ref.""",
    ),
    (
        "code",
        """r = lm.implied_rewards(policy, ref, ids, None, completion, beta)
implicit = lm.implicit_token_rewards(policy, ref, ids, None, completion, beta)
r.sum(-1) - (view.v[:, 3] + implicit.sum(-1))""",
    ),
    (
        "md",
        """**The model as an exact tree.** Expanding the model over a few tokens gives a `TokenTree` whose π_ref is
the model's next-token law. Taking Q = β log π_ref there, the recovered reward's soft optimum is the
model itself:""",
    ),
    (
        "code",
        """tree = lm.expand_tree(policy, [2, 3], tokens=[1, 4, 5, 6], depth=3, eos=1).tree
reward = tm.reward_from_q(tree, beta * tree.log_ref, beta)
sol = tm.soft_solve(tree, reward, beta)
tree, (sol.log_policy - tree.log_ref).abs().max()""",
    ),
    (
        "md",
        """**Definition 1 / Theorem 1.** Adding a constant to all logits of a state changes the Q-function and the
reward — by potential shaping — but not the policy:""",
    ),
    (
        "code",
        """shift = torch.randn(tree.n_nodes, dtype=torch.float64).masked_fill(tree.terminal, 0.0)
shifted = tm.reward_from_q(tree, beta * tree.log_ref + shift[tree.parent.clamp(min=0)], beta)
phi, residual = tm.recover_potential(tree, reward, shifted)
(tm.soft_solve(tree, shifted, beta).log_policy - sol.log_policy).abs().max(), residual.abs().max()""",
    ),
    (
        "md",
        """**Eqs. (12)–(13).** Search on r + β log π_ref with V* at the frontier is likelihood search on π*; without
the frontier value it is not:""",
    ),
    (
        "code",
        """import matplotlib.pyplot as plt
r_task = torch.randn(tree.n_nodes, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
s = tm.soft_solve(tree, r_task, beta)
rows = []
for k in range(1, tree.max_depth + 1):
    rows.append((tm.best_prefix(tree, r_task + beta * tree.log_ref, k, value=s.v).node,
                 tm.best_prefix(tree, beta * s.log_policy, k).node,
                 tm.best_prefix(tree, r_task + beta * tree.log_ref, k).node))
rows   # (value-guided, likelihood, myopic) at each depth""",
    ),
    (
        "code",
        """r_demo = lm.implicit_token_rewards(policy, ref, ids, None, completion, beta)
fig = lm.plot_credit([([f"#{t}" for t in ids[b, 4:].tolist()], r_demo[b, 3:]) for b in range(2)], titles=["row 0", "row 1"])""",
    ),
]

OVERFIT = [
    (
        "md",
        """# Why DPO overfits deterministic preferences

DPO fits σ(βh) to preference probabilities. When a preference is deterministic (always y₁ ≻ y₂) the
logistic loss has no minimiser: h must reach +∞, whatever β, and the policy leaves π_ref entirely
(Azar et al. 2023; Nguyen 2025, sec. 2.3). IPO regresses h on a finite target and stops.""",
    ),
    (
        "code",
        """import torch, toybandit as tb
import matplotlib.pyplot as plt
pref = tb.from_upper_triangle(torch.ones(3, 3, dtype=torch.float64))   # y0 ≻ y1 ≻ y2, always
ref = mu = torch.full((3,), 1 / 3, dtype=torch.float64)
pairs = tb.population_pairs(pref, mu)""",
    ),
    (
        "md",
        """Newton iterations on the exact population losses: DPO's winner probability marches to 1 for every β;
IPO's converges in one step to its closed form.""",
    ),
    (
        "code",
        """fig, ax = plt.subplots(figsize=(5, 3.2))
for k, beta in enumerate([0.1, 1.0, 10.0]):
    dpo = [tb.fit_policy(pairs.chosen, pairs.rejected, ref, beta=beta, weights=pairs.weights, steps=s)[0].item() for s in range(1, 25)]
    ipo = tb.fit_policy(pairs.chosen, pairs.rejected, ref, "ipo", tau=beta, weights=pairs.weights)[0].item()
    ax.plot(range(1, 25), dpo, f"C{k}-", label=f"DPO β={beta}")
    ax.axhline(ipo, color=f"C{k}", ls="--", label=f"IPO τ={beta}")
ax.set(xlabel="Newton step", ylabel="π(y0)"); ax.legend(fontsize=7); fig.tight_layout()""",
    ),
    (
        "md",
        """The same happens with a *stochastic* Bradley–Terry preference and finite data: any pair that was only
ever seen one way round is deterministic for the empirical loss.""",
    ),
    (
        "code",
        """reward = torch.tensor([1.0, 0.0, -1.0], dtype=torch.float64)
bt = tb.bradley_terry(reward)
star = tb.optimal_policy(reward, ref, 1.0)
for n in [5, 20, 200, 5000]:
    data = tb.sample_preferences(bt, mu, n, torch.Generator().manual_seed(n))
    dpo = tb.fit_policy(data.chosen, data.rejected, ref, beta=1.0)
    ipo = tb.fit_policy(data.chosen, data.rejected, ref, "ipo", tau=1.0)
    print(f"n={n:5d}  DPO {dpo.numpy().round(3)}  IPO {ipo.numpy().round(3)}  RLHF optimum {star.numpy().round(3)}")""",
    ),
    (
        "md",
        """With little data DPO puts (almost) all mass on one response; IPO stays near π_ref, pulled towards its
own optimum (which for Ψ = identity differs from the RLHF optimum). The exact checks behind these
statements are in `proofs-check --claim nguyen2025.sec23`.""",
    ),
]

NOTEBOOKS = {
    "ipo_from_first_principles": IPO,
    "language_model_is_a_q_function": QFUNCTION,
    "why_dpo_overfits": OVERFIT,
}


def build(name: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [
        nbformat.v4.new_markdown_cell(src) if kind == "md" else nbformat.v4.new_code_cell(src)
        for kind, src in NOTEBOOKS[name]
    ]
    NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(HERE)}}
    ).execute()
    path = HERE / f"{name}.ipynb"
    nbformat.write(nb, path)
    return path


if __name__ == "__main__":
    for name in sys.argv[1:] or NOTEBOOKS:
        print(build(name))
