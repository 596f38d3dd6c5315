"""What every stage runs on: `runner` (the `--dvc` / Hydra entry point and the params view),
`outputs` (atomic outputs and deterministic JSON), `paths` (where each stage writes), `logs`
(one logging setup, PII-scrubbed), `hashing` (file and tree sha256), `targets` (`_target_`
config -> object), `sweeps` (resuming a sweep, the Ray launcher's work), `lazy` (lazy package
re-exports) and `errors` (the errors a user can act on, exit 2)."""
