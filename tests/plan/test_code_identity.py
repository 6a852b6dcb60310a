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
