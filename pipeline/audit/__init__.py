"""The governance stage's judgement and its documents: `gates` (criteria against metrics, the
verdict), `policy` (the policy committed in conf/, which register judges under), `model_card`
(the card; with `card_words`, `ll144` for the NYC Local Law 144 bias audit and `annex_iv`),
`document` (one document rendered to Markdown and HTML), `charts`
(inline SVG), `attestation` (the signed statement of a judgement), `keys` (its keys);
and `chain`, the server's hash-chained prediction audit log with its verify command
(`python -m pipeline.audit verify DIR`)."""
