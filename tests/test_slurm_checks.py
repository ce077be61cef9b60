"""`--backend slurm` without Slurm's commands: a clear error before anything is written
(whether or not Slurm is installed here: the PATH given has none of its commands)."""

from cli_helpers import TINY, hybtui


def test_no_sbatch_is_a_clear_error(tmp_path, shared_data):
    """Whether Slurm is installed or not: a PATH without its commands."""
    store_dir = tmp_path / "store"
    env = {"PATH": str(tmp_path / "empty")}
    args = ("train", "--store", str(store_dir), "--data-dir", str(shared_data), *TINY, "--backend", "slurm")
    out = hybtui(*args, env_extra=env)
    assert out.returncode != 0
    assert "--backend slurm needs Slurm's sbatch on PATH; it was not found" in out.stderr
    assert not store_dir.exists()
