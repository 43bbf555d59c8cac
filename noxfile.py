"""Developer sessions: `nox -s tests`, `slow`, `lint`, `types`, `docs`, `notebooks`, `bench`."""

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.default_venv_backend = "venv"


@nox.session
def tests(session):
    """The default suite, exactly as CI runs it (slow tests excluded)."""
    session.install(".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def slow(session):
    """Only the tests marked `slow`."""
    session.install(".[test]")
    session.run("pytest", "-m", "slow", *session.posargs)


@nox.session
def lint(session):
    session.install("ruff")
    session.run("ruff", "check", "scarlet_like", "tests", "benchmarks", "noxfile.py", "notebooks")
    session.run("ruff", "format", "--check", "scarlet_like", "tests", "benchmarks", "noxfile.py", "notebooks")


@nox.session
def types(session):
    """Static type check of the package (mypy, configured in pyproject.toml), as CI runs it."""
    session.install(".[test]")
    session.run("mypy")


@nox.session
def docs(session):
    """Build the documentation site (strict: broken references fail the build)."""
    session.install(".[docs]")
    session.run("mkdocs", "build", "--strict")


@nox.session
def notebooks(session):
    """Execute every tutorial (notebooks/*.py) as a notebook."""
    session.install(".[notebooks]")
    session.run("bash", "scripts/run_notebooks.sh", *session.posargs, external=True)


@nox.session
def bench(session):
    """Print every row of the speed table (`benchmarks/bench_table.py`, which runs the other benchmarks'
    measurements, each in a fresh process); `nox -s bench -- --quick` for a shorter run."""
    session.install(".[test]")
    session.run("python", "benchmarks/bench_table.py", *session.posargs)
