"""The MLflow side: `client` (tracking and registry calls with retries, aliases, the champion),
`payload` (params, metrics and tags as MLflow accepts them), `lineage` (git state, data and
params hashes), `attestations` (a version's signed statement in the registry)."""
