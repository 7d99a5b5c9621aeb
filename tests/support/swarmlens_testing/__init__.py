"""What the test suite and the benchmarks share, and nothing the product ships: span builders
(``spans``), one port never handed out twice (``ports``), the one polling helper (``polling``), the
fault-injection harness (``faults``) and the endpoint fuzzer (``endpoint_fuzz``).

Its own small distribution (tests/support/pyproject.toml), installed editable beside swarmlens by
scripts/setup.sh, so that tests/ and bench/ import it by name from anywhere, without sys.path edits.
The modules import swarmlens, which the same environment holds."""
