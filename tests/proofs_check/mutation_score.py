# ruff: noqa: E501
"""Mutation score of the test suite plus the quick catalogue (a development tool, not a test).

Each mutant is one plausible one-line change to toybandit, tokenmdp (tabular) or proofs_check,
applied to a copy of the working tree; it is *killed* when its relevant test files (run first,
``-x``) or ``proofs-check --quick`` fail. Usage, from the repository root::

    nice -n 19 python tests/proofs_check/mutation_score.py [--only K ...] > mutation.txt

prints one line per mutant and the score. Needs two cores for ~1 hour.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

TB = "tests/toybandit"
TM = "tests/tokenmdp"
PC = [
    "tests/proofs_check/test_cli.py",
    "tests/proofs_check/test_registry.py",
    "tests/proofs_check/test_coverage.py",
    "tests/proofs_check/test_faults.py",
]

# The Bellman claim's tolerance made huge: the first `tolerance=1e-9,` after its id.
BELLMAN = '"rafailov2024.eq5-7.bellman",'

# (file, old, new, test files): `old` must occur exactly once in `file`.
MUTANTS: list[tuple[str, str, str, list[str]]] = [
    ("toybandit/optimal.py", "ref.log() + score / beta, dim=-1", "ref.log() + score * beta, dim=-1",
     [f"{TB}/test_optimal.py"]),
    ("toybandit/optimal.py", "return out * (beta.squeeze(-1)", "return out / (beta.squeeze(-1)",
     [f"{TB}/test_optimal.py"]),
    ("toybandit/optimal.py", "(torch.xlogy(policy, policy) - torch.xlogy(policy, ref))",
     "(torch.xlogy(policy, ref) - torch.xlogy(policy, policy))", [f"{TB}/test_optimal.py"]),
    ("toybandit/losses.py", "(chosen - rejected - 1 / (2 * tau)) ** 2",
     "(chosen - rejected - 1 / tau) ** 2", [f"{TB}/test_losses.py"]),
    ("toybandit/losses.py", "return (1 - eps) * loss - eps * F.logsigmoid(-logits)",
     "return (1 - eps) * loss + eps * F.logsigmoid(-logits)", [f"{TB}/test_losses.py"]),
    ("toybandit/preferences.py", "torch.sigmoid(reward.unsqueeze(-1) - reward.unsqueeze(-2))",
     "torch.sigmoid(reward.unsqueeze(-2) - reward.unsqueeze(-1))", [f"{TB}/test_preferences.py"]),
    ("toybandit/preferences.py", "bad = (diag - 0.5).abs() > tol", "bad = (diag - 0.5) > tol",
     [f"{TB}/test_preferences.py"]),
    ("toybandit/data.py", "weights = rho[:, None, None] * pair_weights(pref, mu)",
     "weights = rho[:, None, None] * pair_weights(pref.transpose(-1, -2), mu)",
     [f"{TB}/test_data.py"]),
    ("toybandit/objectives.py", "return 2 * mu.unsqueeze(-1) * mu.unsqueeze(-2) * pref",
     "return mu.unsqueeze(-1) * mu.unsqueeze(-2) * pref", [f"{TB}/test_objectives.py"]),
    ("toybandit/objectives.py", "return _wsum(pair_weights(pref, mu), (h - 0.5) ** 2)",
     "return _wsum(pair_weights(pref, mu), (h - 1.0) ** 2)", [f"{TB}/test_objectives.py"]),
    ("toybandit/objectives.py", "win, lose = (h - 1) ** 2, h**2", "win, lose = h**2, (h - 1) ** 2",
     [f"{TB}/test_objectives.py"]),
    ("toybandit/fit.py", "    tolerance: float = 1e-12,", "    tolerance: float = 1e-6,",
     [f"{TB}/test_fit_teeth.py", f"{TB}/test_fit.py"]),
    ("toybandit/fit.py", "lambda h: beta * (eps * torch.sigmoid(beta * h)",
     "lambda h: beta * (-eps * torch.sigmoid(beta * h)", [f"{TB}/test_fit_teeth.py", f"{TB}/test_fit.py"]),
    ("toybandit/fit.py", "lambda h: 2 * (h - 1 / (2 * tau)),", "lambda h: 2 * (h - 1 / tau),",
     [f"{TB}/test_fit_teeth.py", f"{TB}/test_fit.py"]),
    ("toybandit/fit.py", "> 1e-4 * t * slope and t > 1e-10", "> -1e-4 * t * slope and t > 1e-10",
     [f"{TB}/test_fit_teeth.py", f"{TB}/test_fit.py"]),
    ("tokenmdp/solve.py", "torch.add(r[rows], log_ref[rows], alpha=beta, out=q[rows])",
     "torch.add(r[rows], log_ref[rows], alpha=-beta, out=q[rows])", [f"{TM}/test_solve.py"]),
    ("tokenmdp/solve.py", "torch.div(q[rows], beta, out=lp[rows])",
     "torch.mul(q[rows], beta, out=lp[rows])", [f"{TM}/test_solve.py"]),
    ("tokenmdp/segments.py", "log_s = e.sum(1, keepdim=True).log_()",
     "log_s = e.amax(1, keepdim=True).log_()", [f"{TM}/test_solve.py", f"{TM}/test_segments.py"]),
    ("tokenmdp/solve.py", "lse = segment_log_softmax_(lp[rows], counts, scratch=scratch).mul_(beta)",
     "lse = segment_log_softmax_(lp[rows], counts, scratch=scratch).div_(beta)", [f"{TM}/test_solve.py"]),
    ("tokenmdp/solve.py", "r = qn - val - beta * log_ref", "r = qn - val + beta * log_ref",
     [f"{TM}/test_solve.py"]),
    ("tokenmdp/solve.py", "    val = torch.zeros_like(r)\n", "    val = torch.ones_like(r)\n",
     [f"{TM}/test_solve.py"]),
    ("tokenmdp/sequences.py", "torch.add(out.index_select(0, tree.parent[rows]), x[rows], out=out[rows])",
     "torch.sub(out.index_select(0, tree.parent[rows]), x[rows], out=out[rows])",
     [f"{TM}/test_sequences.py"]),
    ("tokenmdp/sequences.py", "return logratio * _beta_last(beta, logratio)",
     "return logratio / _beta_last(beta, logratio)", [f"{TM}/test_sequences.py"]),
    ("tokenmdp/sequences.py", "ratio = torch.where(both_impossible, 0.0, log_policy - log_ref)",
     "ratio = torch.where(both_impossible, 0.0, log_ref - log_policy)", [f"{TM}/test_sequences.py"]),
    ("tokenmdp/sequences.py", "tree.log_ref.exp() * reward, 0.0",
     "torch.as_tensor(log_policy).exp() * reward, 0.0", [f"{TM}/test_sequences.py"]),
    ("tokenmdp/sequences.py", "shaped = reward + potential - potential[..., tree.parent.clamp(min=0)]",
     "shaped = reward - potential + potential[..., tree.parent.clamp(min=0)]",
     [f"{TM}/test_sequences.py"]),
    ("tokenmdp/search.py", "keep = torch.argsort(cand_total, descending=True, stable=True)",
     "keep = torch.argsort(cand_total, descending=False, stable=True)", [f"{TM}/test_search.py"]),
    ("tokenmdp/search.py", "int((scores[children] + m[children]).argmax())",
     "int((scores[children] + m[children]).argmin())", [f"{TM}/test_search.py"]),
    ("tokenmdp/search.py", "(tree.terminal & (tree.depth < depth))", "(tree.terminal & (tree.depth > depth))",
     [f"{TM}/test_search.py"]),
    ("tokenmdp/train.py", "return bradley_terry(path_sum(tree, edge_values(tree, reward, \"reward\")))",
     "return bradley_terry(-path_sum(tree, edge_values(tree, reward, \"reward\")))",
     [f"{TM}/test_train.py"]),
    ("tokenmdp/train.py", "    return population_pairs(pref, mu)\n",
     "    return population_pairs(pref.transpose(-1, -2), mu)\n", [f"{TM}/test_train.py"]),
    ("tokenmdp/segments.py", "    return m + log_s if ids is not None else _place((m + log_s).squeeze(1), lengths)",
     "    return log_s if ids is not None else _place(log_s.squeeze(1), lengths)",
     [f"{TM}/test_segments.py", f"{TM}/test_tree.py"]),
    ("proofs_check/registry.py", "            return self.observed == \"fails\"\n",
     "            return self.observed != \"error\"\n", PC),
    ("proofs_check/registry.py", "            and self.max_off <= tol\n", "            and self.max_off <= 1e9\n", PC),
    ("proofs_check/registry.py", "if failing is None and not value <= c.tolerance:",
     "if failing is None and not value <= 10 * c.tolerance:", PC),
    ("proofs_check/registry.py", "            message = message or f\"instance {i}: {e}\"\n            value = math.inf",
     "            message = message or f\"instance {i}: {e}\"\n            value = 0.0", PC),
    ("proofs_check/registry.py", "bad = torch.isnan(x) | (x == math.inf)", "bad = torch.isnan(x)", PC),
    ("proofs_check/cli.py", "ok = all(r.ok for r in results)", "ok = any(r.ok for r in results)", PC),
    ("proofs_check/cli.py", "if args.instances is not None and args.instances < 1:",
     "if args.instances is not None and args.instances < 0:", PC),
    ("proofs_check/cli.py", "verified = sum(r.ok and r.claim.expected is Outcome.HOLDS for r in results)",
     "verified = sum(r.ok for r in results)", PC),
    ("proofs_check/rafailov2024.py", BELLMAN, "tolerance=1e9,", PC),
    ("proofs_check/rafailov2024.py",
     "return _maxabs(tm.trajectory_preference(w.tree, w.reward), printed, name=\"p*\")",
     "return _maxabs(printed, printed, name=\"p*\")", PC),
    ("proofs_check/rafailov2024.py", "-2 * v[0] * torch.ones_like(guided)", "-v[0] * torch.ones_like(guided)", PC),
    ("proofs_check/rafailov2024.py", "maxabs(\"V*\", sol.v, v),", "maxabs(\"V*\", v, v),", PC),
    ("proofs_check/nguyen2025.py", "return maxabs(\"fitted π\", fitted, gibbs(w.reward, w.ref, w.beta))\n\n\ndef _without_last",
     "return maxabs(\"fitted π\", fitted, fitted)\n\n\ndef _without_last", PC),
    ("proofs_check/nguyen2025.py", "(2 * w.pref - 1) * (2 * _h(p, w.ref, w.beta) - 1)",
     "(2 * w.pref - 1) * (2 * _h(p, w.ref, w.beta) + 1)", PC),
    ("proofs_check/reference.py", "    v = torch.where(tree.terminal, 0.0, beta * v)\n", "    v = beta * v\n", PC),
    ("proofs_check/worlds.py", "    x = ref.log() + reward / beta\n    e = ", "    x = ref.log() + reward * beta\n    e = ", PC),
]  # fmt: skip


def _apply(root: Path, k: int) -> None:
    path, old, new, _ = MUTANTS[k]
    text = (root / path).read_text()
    if old == BELLMAN:
        i = text.index(BELLMAN)
        j = text.index("tolerance=1e-9,", i)
        (root / path).write_text(text[:j] + "tolerance=1e9," + text[j + len("tolerance=1e-9,") :])
        return
    assert text.count(old) == 1, f"mutant {k}: {old!r} occurs {text.count(old)} times in {path}"
    (root / path).write_text(text.replace(old, new))


def _run(cmd: list[str], root: Path) -> bool:
    """True when the command passes (the mutant survives it)."""
    env = {**os.environ, "PYTHONPATH": str(root), "CI": "true"}
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=1800)
    return proc.returncode == 0


def main(argv: list[str]) -> int:
    only = [int(a) for a in argv[argv.index("--only") + 1 :]] if "--only" in argv else None
    source = Path(__file__).resolve().parents[2]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "tree"
        shutil.copytree(
            source, root, ignore=shutil.ignore_patterns(".git", "__pycache__", "*.ipynb")
        )
        killed, survivors = 0, []
        todo = only if only is not None else range(len(MUTANTS))
        for k in todo:
            path, old, new, tests = MUTANTS[k]
            original = (root / path).read_text()
            _apply(root, k)
            try:
                pytest = [
                    sys.executable,
                    "-m",
                    "pytest",
                    "-x",
                    "-q",
                    "-p",
                    "no:cacheprovider",
                    *tests,
                ]
                survived = _run(pytest, root) and _run(
                    [sys.executable, "-m", "proofs_check", "--quick"], root
                )
            finally:
                (root / path).write_text(original)
            killed += not survived
            if survived:
                survivors.append(k)
            label = new.strip().splitlines()[0][:70] if old != BELLMAN else "bellman tolerance 1e9"
            print(f"{k:>3} {'SURVIVED' if survived else 'killed  '} {path}: {label}", flush=True)
        print(f"\nmutation score: {killed}/{len(todo)} killed; survivors: {survivors}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
