"""The documentation site builds with every warning an error, its API reference covers every
exported name, and nothing in the repository points outside the repository."""

from __future__ import annotations

import html
import importlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import DOCS_SCRIPTS

ROOT = Path(__file__).resolve().parents[1]
API_PAGES = {  # module -> its page in the built site
    "toybandit": "api/toybandit",
    "toybandit.losses": "api/toybandit",
    "tokenmdp": "api/tokenmdp",
    "tokenmdp.lm": "api/tokenmdp-lm",
    "proofs_check": "api/proofs_check",
    "course": "api/course",
}

# Pointers to what a clone of the repository does not have: the planning folder that sits beside
# it. Written so that this file does not match them itself.
OUTSIDE = (
    re.compile(r"\.\./+shared"),
    re.compile("DESIGN" + r"\.md"),
    re.compile(r"shared\s+folder", re.I),
)
MD_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def _mkdocs(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    if importlib.util.find_spec("mkdocs") is None:
        if os.environ.get("CI"):
            pytest.fail("the docs extra is not installed: pip install -e '.[docs]'")
        pytest.skip("needs the docs extra: pip install -e '.[docs]'")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", *args],
        cwd=ROOT,  # snippets resolve README.md from here
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    result = _mkdocs("--site-dir", str(out))
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stderr}"
    return out


def _text(page: Path) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", page.read_text(encoding="utf-8")))


def _exported(module_name: str) -> list[str]:
    module = importlib.import_module(module_name)
    names = getattr(module, "__all__", None)
    if names is None:  # a module without __all__: what it defines itself
        names = [
            n
            for n, obj in vars(module).items()
            if not n.startswith("_") and getattr(obj, "__module__", None) == module_name
        ]
    return list(names)


def test_site_builds_strictly(site):
    for page in ("index.html", "getting-started", "conventions", "claims", "atlas", "gallery", "lab",
                 "performance", "maintaining", "course", "course/01_kl_bandit",
                 *API_PAGES.values()):  # fmt: skip
        assert (site / page).exists(), f"the site lacks {page}"


@pytest.mark.parametrize("module_name", list(API_PAGES))
def test_api_reference_covers_every_export(site, module_name):
    if module_name == "tokenmdp.lm" and importlib.util.find_spec("transformers") is None:
        pytest.skip("tokenmdp.lm needs the lm extra")
    page = (site / API_PAGES[module_name] / "index.html").read_text(encoding="utf-8")
    missing = [n for n in _exported(module_name) if f'id="{module_name}.{n}"' not in page]
    assert not missing, f"{API_PAGES[module_name]} does not document {missing}"


def test_pages_are_rendered_not_quoted(site):
    """Snippets were included, reST roles (:func:`x`) became links and doctests code blocks."""
    for page in site.rglob("*.html"):
        if "<blockquote>" in page.read_text(encoding="utf-8"):  # `>>> x` read as a quote
            pytest.fail(f"{page.relative_to(site)}: a doctest rendered as a block quote")
        text = _text(page)
        assert "--8<--" not in text, f"{page.relative_to(site)}: a snippet was not included"
        role = re.search(r":(func|meth|class|mod|data|attr):`?\w", text)
        assert role is None, f"{page.relative_to(site)}: reST role left in the text: {role[0]}"
    catalogue = _text(site / "claims" / "index.html")
    assert "rafailov2024.eq13.printed" in catalogue, "the coverage table is missing from the page"


def _python_blocks(page: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```$", page.read_text(encoding="utf-8"), re.M | re.S)


def test_getting_started_code_runs():
    """Every Python block of the getting-started page runs as printed."""
    blocks = _python_blocks(ROOT / "docs" / "getting-started.md")
    assert len(blocks) >= 4, "the getting-started page lost its code"
    for code in blocks:
        if "transformers" in code and importlib.util.find_spec("transformers") is None:
            continue  # the lm extra
        exec(compile(code, "docs/getting-started.md", "exec"), {})


def test_a_broken_link_fails_the_build(tmp_path):
    """The negative twin of the strict build: one dangling link in a copy of the pages aborts it."""
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    with (tmp_path / "docs" / "index.md").open("a", encoding="utf-8") as f:
        f.write("\n[a page that is not there](no-such-page.md)\n")
    config = tmp_path / "mkdocs.yml"
    config.write_text(f"INHERIT: {ROOT / 'mkdocs.yml'}\ndocs_dir: {tmp_path / 'docs'}\n")
    result = _mkdocs("--config-file", str(config), "--site-dir", str(tmp_path / "site"))
    assert result.returncode != 0
    assert "no-such-page.md" in result.stderr


def _repo_files() -> list[Path]:
    """The files of the repository: git's list (tracked and new, not ignored) where there is one."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout.decode()
        paths = [ROOT / p for p in listed.split("\0") if p]
    except (OSError, subprocess.CalledProcessError):  # an unpacked archive
        skip = {".git", "site", "build", "dist", "lab_runs", "__pycache__"}
        paths = [
            p
            for p in ROOT.rglob("*")
            if not any(part in skip or part.startswith(".venv") for part in p.parts)
        ]
    return [p for p in paths if p.is_file()]


def _read_text(path: Path) -> str | None:
    data = path.read_bytes()
    return None if b"\0" in data else data.decode("utf-8", errors="replace")


def outside_references(text: str) -> list[str]:
    """Every pointer in ``text`` to the folder outside the repository."""
    return [m[0] for pattern in OUTSIDE for m in pattern.finditer(text)]


def dangling_links(path: Path, text: str, root: Path = ROOT) -> list[str]:
    """Relative Markdown links of ``path`` that leave ``root`` or name no file in it."""
    bad = []
    for target in MD_LINK.findall(text):
        if re.match(r"[a-z][a-z0-9+.-]*:|#", target, re.I):  # a URL or an anchor
            continue
        resolved = (path.parent / target.split("#")[0]).resolve()
        if not resolved.is_relative_to(root) or not resolved.exists():
            bad.append(target)
    return bad


def test_the_reference_checks_have_teeth(tmp_path):
    up, design = "../" + "shared", "DESIGN" + ".md"  # split, or this file would match itself
    assert outside_references(f"the seeds are in {up}/seeds/") == [up]
    assert outside_references(f"see {design} of the project's shared\nfolder") == [
        design,
        "shared\nfolder",
    ]
    assert outside_references("see docs/conventions.md; the shared helper") == []
    page = tmp_path / "page.md"
    (tmp_path / "there.md").touch()
    text = "[in](there.md) [out](../../elsewhere.md) [gone](gone.md) [web](https://x.org) [a](#b)"
    assert dangling_links(page, text, root=tmp_path) == ["../../elsewhere.md", "gone.md"]


def test_nothing_points_outside_the_repository():
    found = []
    for path in _repo_files():
        text = _read_text(path)
        if text is None:
            continue
        found += [f"{path.relative_to(ROOT)}: {hit!r}" for hit in outside_references(text)]
        if path.suffix == ".md" and ROOT / "docs" not in path.parents:  # mkdocs checks docs/
            found += [f"{path.relative_to(ROOT)}: link {t}" for t in dangling_links(path, text)]
    assert not found, "references outside the repository:\n" + "\n".join(found)


# -- the README and the numbers of the docs ---------------------------------------------------------

README = ROOT / "README.md"
README_MAX_LINES = 120
# The only links out of the repository allowed: package registries.
REGISTRIES = re.compile(r"https://(pypi\.org|download\.pytorch\.org)/")


def _pages() -> list[Path]:
    """The README and every page of the docs."""
    return [README, *sorted((ROOT / "docs").rglob("*.md"))]


def test_the_readme_is_short_and_keeps_its_test_command():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines: move detail to docs/"
    # .ci/run runs the 4th line from the marker: sed -n '/<!-- test-command -->/,/^```$/p' | sed -n 4p
    at = lines.index("<!-- test-command -->")
    assert lines[at + 1 : at + 5] == [
        "```bash",
        'pip install "torch==2.13.0" -e ".[test,lm,notebooks,docs]" && proofs-check',
        "python -m pytest",
        "```",
    ]


def test_the_readme_code_runs():
    """Every Python block of the README runs as printed."""
    blocks = _python_blocks(README)
    assert len(blocks) >= 2, "the README lost its taste of the packages"
    for code in blocks:
        exec(compile(code, "README.md", "exec"), {})


def test_every_link_of_the_readme_and_the_docs_resolves():
    """Relative links name a file of the repository; nothing links out but a package registry."""
    bad = []
    for path in _pages():
        text = _read_text(path)
        bad += [f"{path.relative_to(ROOT)}: {t}" for t in dangling_links(path, text)]
        bad += [
            f"{path.relative_to(ROOT)}: {t} leaves the repository"
            for t in MD_LINK.findall(text)
            if re.match(r"[a-z][a-z0-9+.-]*:", t, re.I) and not REGISTRIES.match(t)
        ]
    assert not bad, "links that do not resolve in the repository:\n" + "\n".join(bad)


def test_the_readme_links_into_every_docs_page_it_replaces():
    targets = {t.split("#")[0] for t in MD_LINK.findall(README.read_text(encoding="utf-8"))}
    for page in ("index", "getting-started", "conventions", "claims", "atlas", "gallery", "lab",
                 "performance", "maintaining", "course/index"):  # fmt: skip
        assert f"docs/{page}.md" in targets, f"the README does not link docs/{page}.md"


# A time, a speed-up or a rate quoted in prose: "12 s", "1.6 min", "20× slower", "2–4× the floor",
# "10× when busy", "2× as fast",
# "4·10⁷ nodes/s", or a setting line. Such numbers live only in blocks written by a script. (A ratio
# that is no time, such as a residual "50× below its tolerance", is not one.)
_NUMBER = r"(?<![\w.:{])\d+(?:[.,]\d+)?"
_DIGIT = r"[\d⁰¹²³⁴⁵⁶⁷⁸⁹]"
_COMPARED = r"faster|slower|longer|shorter|larger|smaller|more|less|the\b|has\b|that\b|when\b|as\b"
TIMING = re.compile(
    rf"{_NUMBER}\s?(?:s|ms|µs|min|minutes?|seconds?|hours?)\b(?![-/]|\.\w)"
    rf"|{_DIGIT}\s?×(?=\s*(?:{_COMPARED}|[).,;:]))"
    rf"|{_DIGIT}\s?(?:nodes|tokens|it|steps)/s\b"
    r"|\b(?:an?|half an?)\s+(?:hour|minute)\b"
    r"|^Measured on ",
    re.M,
)


def _timed_blocks() -> tuple[str, ...]:
    """Names of the blocks the benchmark scripts write (each under its setting line)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        names = [importlib.import_module(m).NAME for m in DOCS_SCRIPTS]
        names.append(importlib.import_module("timings").SUMMARY)
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    return tuple(names)


def timings_outside_blocks(text: str, blocks: tuple[str, ...]) -> list[str]:
    """Every time quoted in ``text`` outside the named generated blocks."""
    for name in blocks:
        text = re.sub(rf"<!-- {re.escape(name)}:start -->.*?<!-- {re.escape(name)}:end -->", "",
                      text, flags=re.S)  # fmt: skip
    return [
        text[max(0, m.start() - 30) : m.end() + 10].replace("\n", " ")
        for m in TIMING.finditer(text)
    ]


TIMED = (
    "the suite takes 1.6 min on two cores",
    "about 12 s.",
    "(~0.1 ms)",
    "20× slower",
    "2–4× the floor",
    "swing by 10×.",
    "10× when the machine is busy",
    "2× as fast",
    "at 4–8·10⁷ nodes/s",
    "3 minutes",
    "Measured on x",
    "about an hour on two cores",
    "half a minute",
)
NOT_TIMED = ("64 prompts × 8 responses", "batches 8 × 256", "holds ×2", "eq. (13) is", "1e-6 per run",
             "16 MB blocks", "the fault × claim matrix", "β = 0.5 s.t.", "(2h − 1)",
             'f"{name:14s}"', "50× below its tolerance", "at least 50×\nbelow")  # fmt: skip


def test_the_timing_scan_has_teeth():
    for text in TIMED:
        assert timings_outside_blocks(text, ("t",)), text
        assert timings_outside_blocks(f"<!-- t:start -->\n{text}\n<!-- t:end -->", ("t",)) == []
        assert timings_outside_blocks(f"<!-- u:start -->\n{text}\n<!-- u:end -->", ("t",))
    for text in NOT_TIMED:
        assert timings_outside_blocks(text, ("t",)) == [], text


def test_every_timing_in_the_readme_and_the_docs_is_generated_and_labelled():
    """Times cannot be regenerated bit for bit, so each lives in a block a script writes, under the
    line that says when, where and under what load it was measured (tests/test_benchmarks.py)."""
    blocks = _timed_blocks()
    found = []
    for path in _pages():
        found += [
            f"{path.relative_to(ROOT)}: …{hit}…"
            for hit in timings_outside_blocks(_read_text(path), blocks)
        ]
    assert not found, (
        "times quoted outside a generated, labelled block (see docs/maintaining.md):\n"
        + "\n".join(found)
    )


def _prose(path: Path) -> str:
    return " ".join(path.read_text(encoding="utf-8").split())


def test_the_counts_the_docs_quote_are_the_code_s():
    from hypothesis import settings

    readme, docs = _prose(README), ROOT / "docs"
    dev, ci = settings.get_profile("dev").max_examples, settings.get_profile("ci").max_examples
    assert f"on every run ({dev} per property)" in readme, "test modes: the dev profile's examples"
    assert f"checks the same {ci} examples per property" in readme, "test modes: the ci profile's"
    from tests.stats import PER_RUN

    assert f"false-failure probability ≤ {PER_RUN:.0e}".replace("e-06", "e-6") in readme
    from course import EXERCISES

    notebooks = len(list((ROOT / "notebooks").glob("*.ipynb")))
    for page in ("index.md", "gallery.md"):
        assert f"{len(EXERCISES)} exercises for the {notebooks} notebooks" in _prose(docs / page)
    maintaining = _prose(docs / "maintaining.md")
    assert f"is at most {README_MAX_LINES} lines" in maintaining
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        idle = importlib.import_module("_report").IDLE_BELOW
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    assert f"below {idle} per core" in maintaining
    pytest.importorskip("transformers")
    from tests.tokenmdp.architectures import ARCHITECTURES

    assert f"logits on {len(ARCHITECTURES)} architectures tested" in _prose(docs / "index.md")
