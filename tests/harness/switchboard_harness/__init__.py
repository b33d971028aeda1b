"""What the end-to-end suites share (tests/harness/README.md): `gateway` (start a `switchboard
serve`, wait for /healthz, tail its log, stop it), `catalog` (run preparation, the echo tool),
`jwtkit` and `rawhttp` (tokens and plain HTTP), and, for the AWS suites, `recproxy`, `awswire`,
`faults`, `awscost`, `report` and `settings`. Importable in every suite's venv through the .pth
file that scripts/ensure-venv --harness writes."""
