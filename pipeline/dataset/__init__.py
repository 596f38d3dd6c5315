"""Raw files to a typed, validated frame, in the order ingest calls them: `read` (files of a
dataset spec), `rows` (typing and the spec's row rules), `sensitive` (derived sensitive
attributes), `profile` (the ingest report's counts and ranges)."""
