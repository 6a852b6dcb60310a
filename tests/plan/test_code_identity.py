"""Which code trained a run: commit, dirty flag and run-code hash on a real git checkout."""

import pytest


def test_code_identity_names_commit_dirty_tree_and_run_code(tmp_path):
    """A run's code: the commit and dirty flag of its checkout, and a hash that moves when
    a run-shaping module changes and stays when another file does."""
    import shutil
    import subprocess

    from repro.plan.code_identity import RUN_SHAPING, code_identity, code_sha256

    if shutil.which("git") is None:
        pytest.skip("git not installed")
    pkg = tmp_path / "src" / "repro"
    pkg.mkdir(parents=True)
    for name in RUN_SHAPING:
        (pkg / name).write_text(f"# {name}\n")
    (pkg / "report.py").write_text("# not run-shaping\n")
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    first = code_identity(pkg)
    assert len(first["commit"]) == 40 and first["dirty"] is False
    (pkg / "report.py").write_text("# changed\n")
    second = code_identity(pkg)
    assert second["dirty"] is True and second["code_sha256"] == first["code_sha256"]
    (pkg / "model.py").write_text("# another model\n")
    assert code_sha256(pkg) != first["code_sha256"]


def test_the_run_code_of_a_commit_is_checked_from_git_alone(tmp_path, monkeypatch):
    """A run trained from a tree whose .git is older (a GPU machine's copy, seen): its
    recorded code hash is found again from the repository's objects at the commit that
    holds that code, not at the stale one; a named commit is recorded; strings that are
    no commit never reach git as options or revision expressions."""
    import shutil
    import subprocess

    from repro.plan import code_identity as ci

    if shutil.which("git") is None:
        pytest.skip("git not installed")
    pkg = tmp_path / "src" / "repro"
    for sub in ("engine", "plan"):
        (pkg / sub).mkdir(parents=True)
    for i, name in enumerate(ci.RUN_SHAPING):
        (pkg / ("engine" if i % 2 else "plan") / name).write_text(f"# {name}\n")
    (pkg / "report.py").write_text("# not run-shaping\n")
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)

    def commit() -> str:
        subprocess.run([*git, "add", "-A"], check=True)
        subprocess.run([*git, "commit", "-qm", "x"], check=True)
        return subprocess.run(
            [*git, "rev-parse", "HEAD"], capture_output=True, text=True
        ).stdout.strip()

    old = commit()
    (pkg / "engine" / "train.py").write_text("# the training as the run had it\n")
    new = commit()
    monkeypatch.setenv(ci.NAMED_COMMIT_ENV, new)
    run = ci.code_identity(pkg)
    assert run["named_commit"] == new and run["modules"] == sorted(ci.RUN_SHAPING)
    assert ci.code_sha256_at(tmp_path, new) == run["code_sha256"] == ci.code_sha256(pkg)
    assert ci.code_sha256_at(tmp_path, old) != run["code_sha256"]
    # the stale .git said `old`, dirty: the hash finds `new` among the named commits
    stale = {**run, "commit": old, "dirty": True}
    assert ci.checked_commit(tmp_path, stale) == new
    assert ci.checked_commit(tmp_path, {**stale, "named_commit": None}, (new,)) == new
    assert ci.checked_commit(tmp_path, {**stale, "named_commit": None}) is None
    # a hash taken with fewer modules (runs before packs were hashed) is checked with them
    before = ci.code_sha256(pkg, ci.RUN_SHAPING_BEFORE_PACKS)
    legacy = {"commit": old, "code_sha256": before}
    assert ci.checked_commit(tmp_path, legacy, (new,)) == new
    for forged in ("--output=/tmp/x", "HEAD~1", new + "\n", "0" * 40):
        assert ci.code_sha256_at(tmp_path, forged) is None
    monkeypatch.setenv(ci.NAMED_COMMIT_ENV, "--not-a-commit")
    assert "named_commit" not in ci.code_identity(pkg)
